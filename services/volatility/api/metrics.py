"""The API's Prometheus metrics: ``volatility_http_*`` (requests), ``volatility_api_*`` (models).

Created once per process on first use. Label children are cached so that a request costs a
dictionary lookup per metric rather than a ``labels()`` call.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
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


class _Tally:
    """Bucket counts (non-cumulative, +Inf last) and the sum of one histogram series."""

    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)
        self.total = 0.0


def _histogram(
    name: str,
    documentation: str,
    labels: list[str],
    edges: tuple[float, ...],
    series: Sequence[tuple[Sequence[str], list[int], float]],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    names = [repr(float(b)) for b in edges] + ["+Inf"]  # as prometheus_client writes le
    for values, counts, total in series:
        cumulative = list(itertools.accumulate(counts))
        family.add_metric(
            list(values), list(zip(names, map(float, cumulative), strict=True)), total
        )
    return family


class RequestTally(Collector):
    """HTTP requests counted and timed per (route, method, status): ``*_http_requests_total``
    and ``*_http_request_duration_seconds``, from one bisect and two additions per request.

    Observed by the request middleware on the event loop's thread only, so plain integers do:
    a prometheus_client Counter and Histogram cost several lock round trips per request, a
    sizeable share of serving one row. A scrape from another thread may see a request counted
    in the bucket and not yet in the sum; nothing is lost.
    """

    def __init__(self, edges: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self._edges = list(edges)
        self._edge_tuple = edges
        self._series: dict[tuple[str, str, int], _Tally] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        tally = self._series.get(key)
        if tally is None:
            tally = self._series[key] = _Tally(len(self._edges))
        tally.counts[bisect.bisect_left(self._edges, seconds)] += 1
        tally.total += seconds

    def collect(self) -> Iterator[Metric]:
        labels = [LABEL_ROUTE, LABEL_METHOD, LABEL_STATUS]
        snapshot = [
            ((route, method, str(status)), list(t.counts), t.total)
            for (route, method, status), t in list(self._series.items())
        ]
        requests = CounterMetricFamily(f"{NS}_http_requests", _REQUESTS_DOC, labels=labels)
        for values, counts, _ in snapshot:
            requests.add_metric(list(values), float(sum(counts)))
        yield requests
        yield _histogram(
            f"{NS}_http_request_duration_seconds", _LATENCY_DOC, labels, self._edge_tuple, snapshot
        )

    def describe(self) -> Iterator[Metric]:
        labels = [LABEL_ROUTE, LABEL_METHOD, LABEL_STATUS]
        yield CounterMetricFamily(f"{NS}_http_requests", _REQUESTS_DOC, labels=labels)
        yield HistogramMetricFamily(
            f"{NS}_http_request_duration_seconds", _LATENCY_DOC, labels=labels
        )


_REQUESTS_DOC = "HTTP requests answered, by route template, method and status"
_LATENCY_DOC = "Time from receiving a request to sending its last byte, in the server"
_INFERENCE_DOC = "Time in onnxruntime for one request's rows"
_ROWS_DOC = "Feature rows scored"
_BATCH_DOC = "Rows per scoring request"


class ScoringTally(Collector):
    """Per variant: onnxruntime time, rows scored and rows per request, under one lock (the
    loop and the scoring thread both observe) instead of one per metric."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inference: dict[str, _Tally] = {}
        self._batch: dict[str, _Tally] = {}
        self._latency_edges = list(LATENCY_BUCKETS)
        self._batch_edges = [float(b) for b in BATCH_BUCKETS]

    def observe(self, variant: str, rows: int, seconds: float) -> None:
        with self._lock:
            inference = self._inference.get(variant)
            if inference is None:
                inference = self._inference[variant] = _Tally(len(self._latency_edges))
                self._batch[variant] = _Tally(len(self._batch_edges))
            batch = self._batch[variant]
            inference.counts[bisect.bisect_left(self._latency_edges, seconds)] += 1
            inference.total += seconds
            batch.counts[bisect.bisect_left(self._batch_edges, rows)] += 1
            batch.total += rows

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            inference = [((v,), list(t.counts), t.total) for v, t in self._inference.items()]
            batch = [((v,), list(t.counts), t.total) for v, t in self._batch.items()]
        rows = CounterMetricFamily(f"{NS}_api_rows_scored", _ROWS_DOC, labels=[LABEL_VARIANT])
        for values, _, total in batch:
            rows.add_metric(list(values), total)
        yield rows
        yield _histogram(
            f"{NS}_api_inference_seconds",
            _INFERENCE_DOC,
            [LABEL_VARIANT],
            LATENCY_BUCKETS,
            inference,
        )
        batch_edges = tuple(float(b) for b in BATCH_BUCKETS)
        yield _histogram(f"{NS}_api_batch_rows", _BATCH_DOC, [LABEL_VARIANT], batch_edges, batch)

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(f"{NS}_api_rows_scored", _ROWS_DOC, labels=[LABEL_VARIANT])
        yield HistogramMetricFamily(
            f"{NS}_api_inference_seconds", _INFERENCE_DOC, labels=[LABEL_VARIANT]
        )
        yield HistogramMetricFamily(f"{NS}_api_batch_rows", _BATCH_DOC, labels=[LABEL_VARIANT])


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.requests = RequestTally()
        registry.register(self.requests)
        self.scoring = ScoringTally()
        registry.register(self.scoring)
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
        self._last_active: str | None = None

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.observe(route, method, status, seconds)

    def observe_scoring(self, variant: str, scores: np.ndarray, seconds: float) -> None:
        self.scoring.observe(variant, len(scores), seconds)
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
