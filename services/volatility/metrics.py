"""Every Prometheus metric the pipeline services export, defined once.

Names start with ``volatility_``; labels are ``service``, ``product``, ``model_variant``, ``topic``
and ``reason`` (see names.py) so that dashboards and alerts join across services.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import HistogramMetricFamily, Metric

from volatility.names import (
    LABEL_FEATURE,
    LABEL_PRODUCT,
    LABEL_REASON,
    LABEL_ROLE,
    LABEL_SERVICE,
    LABEL_TOPIC,
    LABEL_VARIANT,
)
from volatility.names import METRIC_NAMESPACE as NS


class BatchHistogram:
    """A histogram fed whole arrays at a time: one numpy call per batch instead of one locked
    Python call per value, which matters at tens of thousands of observations per second.

    Exposes the same series as a prometheus_client Histogram (``_bucket``, ``_count``, ``_sum``).
    """

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self._name, self._doc = name, documentation
        self._labelnames = tuple(labelnames)
        self._bounds = tuple(float(b) for b in buckets)
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], _Series] = {}
        REGISTRY.register(self)

    def labels(self, *values: str) -> _Series:
        with self._lock:
            series = self._series.get(values)
            if series is None:
                series = self._series[values] = _Series(self._bounds, self._lock)
            return series

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._doc, labels=self._labelnames)
        with self._lock:
            for values, series in self._series.items():
                cumulative, running = [], 0
                for bound, count in zip((*self._bounds, float("inf")), series.counts, strict=True):
                    running += count
                    cumulative.append((_le(bound), float(running)))
                family.add_metric(list(values), cumulative, series.total)
        yield family

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self._name, self._doc, labels=self._labelnames)]


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class _Series:
    def __init__(self, bounds: tuple[float, ...], lock: threading.Lock) -> None:
        self._bounds = bounds
        self._lock = lock
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        i = 0
        while i < len(self._bounds) and value > self._bounds[i]:
            i += 1
        with self._lock:
            self.counts[i] += 1
            self.total += value

    def observe_many(self, values: object) -> None:
        """Observe every finite value of a 1-d array-like (NaN marks "not measured")."""
        import numpy as np

        arr = np.asarray(values, dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if not arr.size:
            return
        # Prometheus buckets are upper-inclusive (le): side="left" puts a value equal to a
        # bound into that bound's bucket.
        counts = np.bincount(
            np.searchsorted(self._bounds, arr, side="left"), minlength=len(self.counts)
        )
        total = float(arr.sum())
        with self._lock:
            for i, c in enumerate(counts.tolist()):
                self.counts[i] += c
            self.total += total


_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

TICKS = Counter(f"{NS}_ticks", "Ticks handled", [LABEL_SERVICE, LABEL_PRODUCT])
FRAMES = Counter(f"{NS}_frames", "Exchange frames received", ["channel"])
MALFORMED = Counter(
    f"{NS}_malformed", "Inputs set aside as unusable", [LABEL_SERVICE, LABEL_REASON]
)
DEADLETTERS = Counter(
    f"{NS}_deadletters", "Messages sent to the dead-letter topic", [LABEL_SERVICE, LABEL_REASON]
)
RECONNECTS = Counter(f"{NS}_reconnects", "Exchange WebSocket connections after the first")
DISCONNECTS = Counter(
    f"{NS}_disconnects",
    "Exchange WebSocket connections lost (closed, error, stale)",
    [LABEL_REASON],
)
CONNECT_FAILURES = Counter(f"{NS}_connect_failures", "Failed exchange connection attempts")
SEQUENCE_GAPS = Counter(f"{NS}_sequence_gaps", "Jumps in the exchange's sequence numbers")
SEQUENCE_MISSED = Counter(f"{NS}_sequence_missed", "Exchange sequence numbers skipped by gaps")
FEED_CONNECTED = Gauge(f"{NS}_feed_connected", "1 while the exchange feed is connected")
FEATURE_VECTORS = Counter(f"{NS}_feature_vectors", "Feature vectors emitted", [LABEL_PRODUCT])
HISTORY_RESTARTS = Counter(
    f"{NS}_history_restarts",
    "Feature windows restarted (long silence, late start or partition reassignment)",
    [LABEL_PRODUCT, LABEL_REASON],
)
PREDICTIONS = Counter(f"{NS}_predictions", "Predictions produced", [LABEL_PRODUCT, LABEL_VARIANT])
SPIKES = Counter(f"{NS}_spikes", "Predictions flagged as spikes", [LABEL_PRODUCT, LABEL_VARIANT])
SCORE = BatchHistogram(
    f"{NS}_score",
    "Distribution of spike scores",
    [LABEL_VARIANT],
    buckets=(0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99),
)
PROCESSING_SECONDS = Histogram(
    f"{NS}_processing_seconds",
    "Time to handle one batch of input messages",
    [LABEL_SERVICE],
    buckets=_LATENCY_BUCKETS,
)
END_TO_END_SECONDS = BatchHistogram(
    f"{NS}_end_to_end_seconds",
    "From the end of a feature window (event time) to its prediction being produced",
    [LABEL_VARIANT],
    buckets=_LATENCY_BUCKETS,
)
MODEL_INFO = Gauge(
    f"{NS}_model_info",
    "The model being served (value 1)",
    [LABEL_SERVICE, LABEL_VARIANT, "version"],
)
LAST_EVENT_TIME = Gauge(
    f"{NS}_last_event_time_seconds",
    "Event time of the latest input",
    [LABEL_SERVICE, LABEL_PRODUCT],
)
TICK_TO_PREDICTION_SECONDS = BatchHistogram(
    f"{NS}_tick_to_prediction_seconds",
    "From the tick that closed a window entering the pipeline (ingest wall clock) to its "
    "prediction being produced",
    [LABEL_VARIANT],
    buckets=_LATENCY_BUCKETS,
)
MESSAGES_IN = Counter(f"{NS}_messages_in", "Messages read from Kafka", [LABEL_SERVICE, LABEL_TOPIC])
MESSAGES_OUT = Counter(
    f"{NS}_messages_out", "Messages produced to Kafka", [LABEL_SERVICE, LABEL_TOPIC]
)
DELIVERY_ERRORS = Counter(
    f"{NS}_delivery_errors", "Produced messages the broker did not acknowledge", [LABEL_SERVICE]
)
PRODUCER_REPLACEMENTS = Counter(
    f"{NS}_producer_replacements",
    "Producers replaced because they had stopped sending to partitions the broker serves",
    [LABEL_SERVICE],
)
CONSUMER_LAG = Gauge(
    f"{NS}_consumer_lag",
    "Messages between a partition's high watermark and the group's position in it",
    [LABEL_TOPIC, "partition", "group"],
)
REBALANCES = Counter(
    f"{NS}_rebalances",
    "Partitions assigned, revoked or lost in consumer-group rebalances",
    [LABEL_SERVICE, "event"],
)
STATE_REBUILD_MESSAGES = Counter(
    f"{NS}_state_rebuild_messages",
    "Messages re-read after an assignment to rebuild per-partition state (outputs suppressed)",
    [LABEL_SERVICE],
)
LATE_TICKS = Counter(
    f"{NS}_late_ticks", "Ticks older than a window already closed, set aside", [LABEL_SERVICE]
)
DUPLICATE_TICKS = Counter(
    f"{NS}_duplicate_ticks",
    "Ticks identical to one already taken at the same event time, ignored",
    [LABEL_SERVICE],
)
WATERMARK_VECTORS = Counter(
    f"{NS}_watermark_vectors",
    "Feature vectors closed by a watermark record (a quiet product) rather than by a tick",
    [LABEL_PRODUCT],
)
# Live model quality and drift, per variant and product. ``role`` says whether the variant is
# serving ("active") or scored beside it without serving ("shadow"); every figure comes with the
# number of labelled predictions behind it, so alerts compare only figures with enough support.
LIVE_PR_AUC = Gauge(
    f"{NS}_live_pr_auc",
    "Rolling PR-AUC of predictions whose horizon has passed, against their realized labels",
    [LABEL_VARIANT, LABEL_PRODUCT, LABEL_ROLE],
)
LIVE_LABELLED = Gauge(
    f"{NS}_live_labelled",
    "Labelled predictions behind the rolling live-quality figures",
    [LABEL_VARIANT, LABEL_PRODUCT, LABEL_ROLE],
)
LIVE_PRECISION = Gauge(
    f"{NS}_live_precision",
    "Rolling precision of the spike flags (score at or above the operating threshold)",
    [LABEL_VARIANT, LABEL_PRODUCT, LABEL_ROLE],
)
LIVE_RECALL = Gauge(
    f"{NS}_live_recall",
    "Rolling recall of the spike flags (score at or above the operating threshold)",
    [LABEL_VARIANT, LABEL_PRODUCT, LABEL_ROLE],
)
LIVE_BRIER = Gauge(
    f"{NS}_live_brier",
    "Rolling Brier score of the spike probabilities (lower is better)",
    [LABEL_VARIANT, LABEL_PRODUCT, LABEL_ROLE],
)
LIVE_PREVALENCE = Gauge(
    f"{NS}_live_prevalence",
    "Rolling share of labelled predictions whose horizon turned out a spike",
    [LABEL_VARIANT, LABEL_PRODUCT, LABEL_ROLE],
)
FEATURE_PSI = Gauge(
    f"{NS}_feature_psi",
    "Population stability index of a feature, live against the model's training distribution",
    [LABEL_FEATURE, LABEL_PRODUCT, LABEL_VARIANT],
)
FEATURE_PSI_TRAINING_MAX = Gauge(
    f"{NS}_feature_psi_training_max",
    "Largest PSI a stretch (10 to 60 min) of one training session shows against the training "
    "distribution: drift the model was trained across",
    [LABEL_FEATURE, LABEL_PRODUCT, LABEL_VARIANT],
)
