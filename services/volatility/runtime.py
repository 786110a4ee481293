"""Process plumbing shared by the services: JSON logs, graceful signals, health and metrics."""

from __future__ import annotations

import gc
import json
import logging
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from volatility.settings import RuntimeSettings

log = logging.getLogger(__name__)


def configure_logging(settings: RuntimeSettings, service: str) -> None:
    """JSON lines on stdout (or plain text for a terminal), configured once per process."""
    handler = logging.StreamHandler(sys.stdout)
    if settings.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


# Hot loops allocate many short-lived, acyclic objects (messages, ticks, rows) that refcounting
# frees; collections at the default threshold (700) find almost nothing alive but traverse the
# whole young heap. Rarer collections, and start-up objects frozen out of them, cut that cost.
GC_THRESHOLDS = (20_000, 10, 10)


def tune_gc() -> None:
    """Call once a service has loaded what it keeps for its lifetime."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def install_signal_handlers() -> threading.Event:
    """SIGTERM and SIGINT set the returned event; a second SIGINT exits at once."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


class Health:
    """Liveness is a heartbeat from the main loop; readiness is set by the service; what it
    runs (``/version``) is described by the service once it knows."""

    def __init__(self, stall_after: float = 60.0) -> None:
        self._beat = time.monotonic()
        self._ready = False
        self._stall_after = stall_after
        self._info: dict[str, Any] = {}

    def describe(self, **info: Any) -> None:
        self._info = {**self._info, **info}  # one reference swap: readers see old or new

    @property
    def info(self) -> dict[str, Any]:
        return self._info

    def beat(self) -> None:
        self._beat = time.monotonic()

    def set_ready(self, ready: bool) -> None:
        self._ready = ready

    @property
    def alive(self) -> bool:
        return time.monotonic() - self._beat < self._stall_after

    @property
    def ready(self) -> bool:
        return self._ready and self.alive


def serve_health_and_metrics(port: int, health: Health) -> ThreadingHTTPServer:
    """/metrics (Prometheus), /healthz, /readyz and /version (JSON: what the service runs, e.g.
    the consumer's model; 503 until it is described) on ``port``, in a daemon thread."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, status, ctype = generate_latest(), 200, CONTENT_TYPE_LATEST
            elif self.path == "/version":
                info = health.info
                body = json.dumps(info or {"detail": "starting"}).encode()
                status, ctype = (200 if info else 503), "application/json"
            elif self.path == "/healthz":
                ok = health.alive
                body, status, ctype = (
                    (b"ok" if ok else b"stalled"),
                    (200 if ok else 503),
                    "text/plain",
                )
            elif self.path == "/readyz":
                ok = health.ready
                body, status, ctype = (
                    (b"ready" if ok else b"not ready"),
                    (200 if ok else 503),
                    "text/plain",
                )
            else:
                body, status, ctype = b"not found", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Probes every few seconds would drown the logs."""

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # noqa: S104 - probes come from the kubelet
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
