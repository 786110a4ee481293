"""A real Alertmanager (Debian's `prometheus-alertmanager`, see provision-prometheus.sh) on
loopback, routing every alert at once to a webhook receiver that a test serves on loopback and
reads back."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from tests.infra.controlplane import free_port


class WebhookReceiver:
    """Alertmanager's webhook_config target: keeps every notification it receives."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with received._lock:
                    received.notifications.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook", daemon=True
        )
        self._thread.start()

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification so far."""
        with self._lock:
            return [a for n in self.notifications for a in n.get("alerts", [])]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class Alertmanager:
    """One Alertmanager, clustering off, sending every alert group to ``webhook_url`` after
    ``group_wait``."""

    def __init__(self, bin_dir: Path, webhook_url: str, group_wait: str = "1s") -> None:
        self.bin_dir = bin_dir
        self.webhook_url = webhook_url
        self.group_wait = group_wait
        self.workdir = Path(tempfile.mkdtemp(prefix="volatility-alertmanager-"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> Self:
        config = self.workdir / "alertmanager.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "route": {
                        "receiver": "webhook",
                        "group_by": ["alertname"],
                        "group_wait": self.group_wait,
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [
                        {
                            "name": "webhook",
                            "webhook_configs": [{"url": self.webhook_url, "send_resolved": False}],
                        }
                    ],
                }
            )
        )
        self._log = open(self.workdir / "alertmanager.log", "wb")
        self.proc = subprocess.Popen(
            [
                str(self.bin_dir / "alertmanager"),
                f"--config.file={config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address={self.address}",
                "--cluster.listen-address=",  # no gossip port: one instance, loopback only
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                message = f"alertmanager did not get ready:\n{self.log_tail()}"
                self.__exit__(None, None, None)  # stop it and remove its directory
                raise RuntimeError(message)
            time.sleep(0.2)  # poll /-/ready against the deadline
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:  # noqa: S310
                return bool(r.status == 200)
        except OSError:
            return False

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now (its v2 API)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as r:  # noqa: S310
            alerts: list[dict[str, Any]] = json.load(r)
        return alerts

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "alertmanager.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
