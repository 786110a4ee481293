"""Free TCP ports on 127.0.0.1 for the test tiers' processes."""

from __future__ import annotations

import socket
import threading

_issued: set[int] = set()
_lock = threading.Lock()


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the kernel picks it), and never one this
    process has handed out before: two picks in a row can otherwise return the same port (a
    broker's two listeners, etcd's client and peer ports)."""
    with _lock:
        for _ in range(1000):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port: int = sock.getsockname()[1]
            if port not in _issued:
                _issued.add(port)
                return port
    raise RuntimeError("the kernel kept picking ports this process has already used")
