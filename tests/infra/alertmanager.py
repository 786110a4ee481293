"""A real Alertmanager (Debian's `prometheus-alertmanager`, see provision-prometheus.sh) on
loopback, routing every alert at once to a webhook receiver that a test serves on loopback and
reads back."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.infra.loopback_server import LoopbackServer


class WebhookReceiver:
    """Alertmanager's webhook_config target: keeps every notification it receives. It listens
    on ``host``: loopback, or the node's bridge address for an Alertmanager in a pod."""

    def __init__(self, host: str = "127.0.0.1") -> None:
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

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self._server.server_address[1]}/alerts"
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


class Alertmanager(LoopbackServer):
    """One Alertmanager, clustering off, sending every alert group to ``webhook_url`` after
    ``group_wait``."""

    name = "alertmanager"

    def __init__(self, bin_dir: Path, webhook_url: str, group_wait: str = "1s") -> None:
        super().__init__(bin_dir)
        self.webhook_url = webhook_url
        self.group_wait = group_wait

    def arguments(self) -> list[str]:
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
        return [
            f"--config.file={config}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",  # no gossip port: one instance, loopback only
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now (its v2 API)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as r:  # noqa: S310
            alerts: list[dict[str, Any]] = json.load(r)
        return alerts
