"""The API's Prometheus metrics: ``volatility_http_*`` (requests), ``volatility_api_*`` (models).

Created once per process on first use. Label children are cached so that a request costs a
dictionary lookup per metric rather than a ``labels()`` call.
"""

from __future__ import annotations

import bisect
import functools
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from volatility.names import LABEL_VARIANT, VARIANTS
from volatility.names import METRIC_NAMESPACE as NS

if TYPE_CHECKING:
    from volatility.api.registry import Served

# Fine buckets: a single-row request is served in a fraction of a millisecond.
LATENCY_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
SCORE_BUCKETS: Final = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
BATCH_BUCKETS: Final = (1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000)

LABEL_ROUTE: Final = "route"
LABEL_METHOD: Final = "method"
LABEL_STATUS: Final = "status"


class ScoreHistogram(Collector):
    """A histogram of scores fed whole arrays at a time (``Histogram.observe`` is per value)."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self._name = name
        self._doc = documentation
        self._edges = np.asarray(buckets, dtype=np.float64)
        self._edge_list = [float(b) for b in buckets]
        self._labels = [f"{b:g}" for b in buckets] + ["+Inf"]
        self._lock = threading.Lock()
        self._counts: dict[str, np.ndarray] = {}
        self._sums: dict[str, float] = {}

    def observe_many(self, variant: str, scores: np.ndarray) -> None:
        if len(scores) == 1:
            # One score (the common single-row request): bisect costs far less than three
            # NumPy calls. bisect_left, as searchsorted below: upper-inclusive buckets.
            value = float(scores[0])
            slot = bisect.bisect_left(self._edge_list, value)
            with self._lock:
                tally = self._counts.get(variant)
                if tally is None:
                    tally = self._counts[variant] = np.zeros(len(self._labels), dtype=np.int64)
                    self._sums[variant] = 0.0
                tally[slot] += 1
                self._sums[variant] += value
            return
        # Prometheus buckets are upper-inclusive (le): a score equal to an edge falls in it.
        index = np.searchsorted(self._edges, scores, side="left")
        counts = np.bincount(index, minlength=len(self._labels))
        total = float(scores.sum(dtype=np.float64))
        with self._lock:
            if variant in self._counts:
                self._counts[variant] += counts
                self._sums[variant] += total
            else:
                self._counts[variant] = counts.astype(np.int64)
                self._sums[variant] = total

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._doc, labels=[LABEL_VARIANT])
        with self._lock:
            snapshot = [(v, c.cumsum(), self._sums[v]) for v, c in self._counts.items()]
        for variant, cumulative, total in snapshot:
            family.add_metric(
                [variant],
                list(zip(self._labels, (float(c) for c in cumulative), strict=True)),
                total,
            )
        yield family

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self._name, self._doc, labels=[LABEL_VARIANT])


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.requests = Counter(
            f"{NS}_http_requests",
            "HTTP requests answered, by route template, method and status",
            [LABEL_ROUTE, LABEL_METHOD, LABEL_STATUS],
            registry=registry,
        )
        self.latency = Histogram(
            f"{NS}_http_request_duration_seconds",
            "Time from receiving a request to sending its last byte, in the server",
            [LABEL_ROUTE, LABEL_METHOD, LABEL_STATUS],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.inference = Histogram(
            f"{NS}_api_inference_seconds",
            "Time in onnxruntime for one request's rows",
            [LABEL_VARIANT],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rows = Counter(
            f"{NS}_api_rows_scored", "Feature rows scored", [LABEL_VARIANT], registry=registry
        )
        self.batch_rows = Histogram(
            f"{NS}_api_batch_rows",
            "Rows per scoring request",
            [LABEL_VARIANT],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.scores = ScoreHistogram(
            f"{NS}_api_score", "Distribution of spike scores served", SCORE_BUCKETS
        )
        registry.register(self.scores)
        self.loaded = Gauge(
            f"{NS}_api_model_loaded",
            "1 if the variant's model is loaded in this process",
            [LABEL_VARIANT],
            registry=registry,
        )
        self.active = Gauge(
            f"{NS}_api_model_active",
            "1 for the variant answering requests that do not name one",
            [LABEL_VARIANT],
            registry=registry,
        )
        self.info = Gauge(
            f"{NS}_api_model_info",
            "Loaded models (value 1) with their version and digest",
            [LABEL_VARIANT, "version", "sha256"],
            registry=registry,
        )
        self.switches = Counter(
            f"{NS}_api_variant_switches",
            "Changes of the active variant, by the variant switched to",
            [LABEL_VARIANT],
            registry=registry,
        )
        self.stream_read = Counter(
            f"{NS}_api_predictions_read",
            "Predictions read from the predictions topic by the API",
            registry=registry,
        )
        self.stream_rejected = Counter(
            f"{NS}_api_predictions_rejected",
            "Messages of the predictions topic the API could not decode (skipped)",
            registry=registry,
        )
        self.stream_clients = Gauge(
            f"{NS}_api_stream_clients",
            "Clients following /predictions/stream",
            registry=registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._variant_children: dict[str, tuple[Histogram, Counter, Histogram]] = {}
        self._last_active: str | None = None

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (route, method, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_scoring(self, variant: str, scores: np.ndarray, seconds: float) -> None:
        children = self._variant_children.get(variant)
        if children is None:
            children = (
                self.inference.labels(variant),
                self.rows.labels(variant),
                self.batch_rows.labels(variant),
            )
            self._variant_children[variant] = children
        children[0].observe(seconds)
        children[1].inc(len(scores))
        children[2].observe(len(scores))
        self.scores.observe_many(variant, scores)

    def observe_read(self, read: int, rejected: int) -> None:
        if read:
            self.stream_read.inc(read)
        if rejected:
            self.stream_rejected.inc(rejected)

    def publish_models(self, served: Served) -> None:
        self.info.clear()
        for variant in VARIANTS:
            model = served.models.get(variant)
            self.loaded.labels(variant).set(1 if model is not None else 0)
            self.active.labels(variant).set(1 if variant == served.active else 0)
            if model is not None:
                self.info.labels(variant, model.contract.version, model.info.sha256[:12]).set(1)
        if self._last_active is not None and self._last_active != served.active:
            self.switches.labels(served.active).inc()
        self._last_active = served.active


@functools.cache
def api_metrics() -> ApiMetrics:
    """The process's metrics, registered in the default registry on first call."""
    return ApiMetrics()
