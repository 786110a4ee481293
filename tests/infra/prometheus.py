"""A real Prometheus (Debian's package, see provision-prometheus.sh) on loopback, scraping a
signal exporter every second (or running the configuration a test writes); and that exporter:
the API's own metrics (`ApiMetrics`) in a private registry, fed with requests whose error ratio
and latency a test chooses."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from tests.infra.loopback_server import LoopbackServer
from tests.infra.ports import free_port
from volatility.api.metrics import ApiMetrics

INFRA = Path(__file__).resolve().parent


def provision() -> Path:
    proc = subprocess.run(
        ["bash", str(INFRA / "provision-prometheus.sh")],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        timeout=600,
    )
    return Path(proc.stdout.strip().splitlines()[-1])


class SignalExporter:
    """Serves `volatility_http_*` like the API; a thread records ``rate`` requests/s."""

    def __init__(self, rate: float = 50.0) -> None:
        self.registry = CollectorRegistry()
        self.metrics = ApiMetrics(self.registry)
        self.port = free_port()
        self.rate = rate
        self.error_ratio = 0.0
        self.latency = 0.005
        self._stop = threading.Event()
        self._server, self._server_thread = start_http_server(
            self.port, addr="127.0.0.1", registry=self.registry
        )
        self._thread = threading.Thread(target=self._run, name="signal-exporter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        owed = 0.0
        while not self._stop.wait(0.1):  # the exporter's own clock: 10 batches a second
            owed += self.rate * 0.1
            n, owed = int(owed), owed - int(owed)
            errors = round(n * self.error_ratio)
            for i in range(n):
                status = 503 if i < errors else 200
                self.metrics.observe_request("/predict", "POST", status, self.latency)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.shutdown()


class Prometheus(LoopbackServer):
    """``config`` (a function of the work directory, returning prometheus.yml) replaces the
    default one-job configuration scraping ``targets``."""

    name = "prometheus"

    def __init__(
        self,
        bin_dir: Path,
        targets: list[str],
        config: Callable[[Path], str] | None = None,
    ) -> None:
        super().__init__(bin_dir)
        self.targets = targets
        self.config = config

    def arguments(self) -> list[str]:
        config = self.workdir / "prometheus.yml"
        listed = ", ".join(f'"{t}"' for t in self.targets)
        config.write_text(
            self.config(self.workdir)
            if self.config is not None
            else "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: volatility\n    static_configs: [{{targets: [{listed}]}}]\n"
        )
        return [
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
        ]

    def query(self, expr: str) -> dict[str, Any]:
        """The HTTP API's answer to an instant query: status, and data or the error."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310
                answer: dict[str, Any] = json.load(r)
        except urllib.error.HTTPError as e:  # a query Prometheus refuses, with its reason
            answer = json.load(e)
        return answer
