"""The operator's live-quality signal against a real Prometheus: how far the serving variant's
live PR-AUC trails the shadow's, from the gauges the consumer exports, and only once enough
labelled predictions back both figures."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from tests.infra.prometheus import Prometheus, provision
from volatility import metrics
from volatility.names import LABEL_PRODUCT, LABEL_ROLE, LABEL_VARIANT
from volatility_operator import prometheus
from volatility_operator.resource import Signal

LABELS = [LABEL_VARIANT, LABEL_PRODUCT, LABEL_ROLE]


class Exporter:
    """The consumer's live-quality gauges, by their own names, set by the test."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pr_auc = Gauge(
            metrics.LIVE_PR_AUC._name, "live PR-AUC", LABELS, registry=self.registry
        )
        self.labelled = Gauge(
            metrics.LIVE_LABELLED._name, "labelled", LABELS, registry=self.registry
        )
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.port = self.server.server_port

    def set(self, variant: str, product: str, role: str, pr_auc: float, labelled: int) -> None:
        self.pr_auc.labels(variant, product, role).set(pr_auc)
        self.labelled.labels(variant, product, role).set(labelled)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[Prometheus, Exporter]]:
    exporter = Exporter()
    try:
        with Prometheus(provision(), [f"127.0.0.1:{exporter.port}"]) as server:
            yield server, exporter
    finally:
        exporter.close()


def until(server: Prometheus, want: float | None) -> None:
    """Until Prometheus answers ``want`` (None: no data) for the live-quality signal."""
    expr: dict[Signal, str] = {"liveQualityGap": prometheus.queries()["liveQualityGap"]}
    deadline = time.monotonic() + 30
    while True:
        value = prometheus.sample(server.url, expr)["liveQualityGap"]
        if (value is None and want is None) or (
            value is not None and want is not None and abs(value - want) < 1e-9
        ):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the signal is {value}, not {want}:\n{server.log_tail()}")
        time.sleep(0.5)  # poll against the deadline


def test_the_gap_is_the_worst_product_and_needs_enough_labels(
    live: tuple[Prometheus, Exporter],
) -> None:
    server, exporter = live
    exporter.set("ml", "BTC-USD", "active", 0.20, 500)
    exporter.set("baseline", "BTC-USD", "shadow", 0.32, 500)
    exporter.set("ml", "ETH-USD", "active", 0.40, 500)
    exporter.set("baseline", "ETH-USD", "shadow", 0.35, 500)
    until(server, 0.12)  # BTC-USD trails by 0.12; ETH-USD leads
    exporter.set("ml", "BTC-USD", "active", 0.20, 150)  # too few labels behind the figure
    until(server, -0.05)  # only ETH-USD is compared
    exporter.set("ml", "ETH-USD", "active", 0.40, 10)
    until(server, None)  # nothing backed by enough labels: no data, never a breach
