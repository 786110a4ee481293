"""`volatility operator` as a local process against the test control plane, authenticated as
the chart's ServiceAccount (a token from `kubectl create token`), so the shipped RBAC is what
the operator gets. kwok pods run nothing, so the operator's own pod from the chart only
exists; this process plays it, with the arguments the chart gives that pod."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tests.infra.controlplane import Kube
from tests.infra.ports import free_port


def service_account_kubeconfig(kube: Kube, namespace: str, account: str, path: Path) -> Path:
    token = kube.kubectl(
        "create", "token", account, "-n", namespace, "--duration=2h"
    ).stdout.strip()
    admin = json.loads(kube.kubeconfig.read_text())
    config = {
        **admin,
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {
                "name": "operator",
                "context": {"cluster": "volatility-test", "user": account, "namespace": namespace},
            }
        ],
        "current-context": "operator",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


class OperatorProcess:
    def __init__(self, args: list[str], kubeconfig: Path, namespace: str, log: Path) -> None:
        self.port = free_port()
        self.args = [
            *[a for a in args if not a.startswith(("--liveness", "--log-format"))],
            f"--liveness=http://127.0.0.1:{self.port}/healthz",
            "--log-format=text",
            "--idle-interval=2",
        ]
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "POD_NAMESPACE": namespace,
        }
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "volatility.cli", *self.args],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1
        deadline = time.monotonic() + 60
        while self.liveness() is None:
            if self.proc.poll() is not None:
                raise AssertionError(f"the operator exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the operator's liveness never answered:\n{self.log_tail()}")
            time.sleep(0.2)  # poll against the deadline

    def liveness(self) -> tuple[int, Any] | None:
        """(HTTP status, body) of the liveness endpoint, None while it does not answer."""
        try:
            with urllib.request.urlopen(self.url, timeout=15) as r:  # noqa: S310 - loopback
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except OSError:
            return None

    def kill(self) -> None:
        """SIGKILL: no goodbye, no clean-up, as when a node dies."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()

    def _close(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, check: Callable[[str], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check(self.log_text()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what} in the operator log")
            time.sleep(0.2)  # poll the log against the deadline

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class FreezingProxy:
    """A TCP relay to the API server that can freeze the connections open at a given moment:
    they stay open but carry nothing more, as a half-dead connection does. Connections opened
    afterwards are relayed normally. TLS passes through untouched."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._frozen_before: float | None = None
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def freeze(self) -> None:
        self._frozen_before = time.monotonic()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            opened = time.monotonic()
            self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(src, dst, opened), name="proxy-pump", daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, opened: float) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                if not data:
                    break
                frozen = self._frozen_before
                if frozen is not None and opened < frozen:
                    continue  # swallowed: the connection looks alive and delivers nothing
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self.listener.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()
