"""Every Prometheus metric the pipeline services export, defined once.

Names start with ``volatility_``; labels are ``service``, ``product``, ``variant`` and ``reason``
(see names.py) so that dashboards and alerts join across services.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from volatility.names import LABEL_PRODUCT, LABEL_REASON, LABEL_SERVICE, LABEL_VARIANT
from volatility.names import METRIC_NAMESPACE as NS

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

TICKS = Counter(f"{NS}_ticks", "Ticks handled", [LABEL_SERVICE, LABEL_PRODUCT])
FRAMES = Counter(f"{NS}_frames", "Exchange frames received", ["channel"])
MALFORMED = Counter(
    f"{NS}_malformed", "Inputs set aside as unusable", [LABEL_SERVICE, LABEL_REASON]
)
DEADLETTERS = Counter(
    f"{NS}_deadletters", "Messages sent to the dead-letter topic", [LABEL_SERVICE, LABEL_REASON]
)
RECONNECTS = Counter(f"{NS}_reconnects", "Exchange WebSocket reconnections", [LABEL_REASON])
SEQUENCE_GAPS = Counter(f"{NS}_sequence_gaps", "Missing exchange sequence numbers")
FEATURE_VECTORS = Counter(f"{NS}_feature_vectors", "Feature vectors emitted", [LABEL_PRODUCT])
HISTORY_RESTARTS = Counter(
    f"{NS}_history_restarts",
    "Feature windows restarted (long silence, late start or partition reassignment)",
    [LABEL_PRODUCT, LABEL_REASON],
)
PREDICTIONS = Counter(f"{NS}_predictions", "Predictions produced", [LABEL_PRODUCT, LABEL_VARIANT])
SPIKES = Counter(f"{NS}_spikes", "Predictions flagged as spikes", [LABEL_PRODUCT, LABEL_VARIANT])
SCORE = Histogram(
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
END_TO_END_SECONDS = Histogram(
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
