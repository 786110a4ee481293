"""The one definition of the names that cross process boundaries.

Topic names, model variant names, product defaults and the metric namespace live here so that
the services, the chart and the tests never spell them twice.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

VariantName = Literal["baseline", "ml"]
VARIANTS: Final[tuple[VariantName, ...]] = get_args(VariantName)

# Kafka topics, versioned so a change of message schema gets a new topic.
TOPIC_TICKS: Final = "volatility.ticks.v1"
TOPIC_FEATURES: Final = "volatility.features.v1"
TOPIC_PREDICTIONS: Final = "volatility.predictions.v1"
TOPIC_DEADLETTER: Final = "volatility.deadletter.v1"

# Kafka consumer groups.
GROUP_FEATURIZER: Final = "volatility-featurizer"
GROUP_CONSUMER: Final = "volatility-consumer"
# The API reads predictions under this prefix, one group per process (see api/predictions.py).
GROUP_API: Final = "volatility-api"

DEFAULT_PRODUCTS: Final[tuple[str, ...]] = ("BTC-USD", "ETH-USD")
COINBASE_WS_URL: Final = "wss://advanced-trade-ws.coinbase.com"

# Every metric the project exports starts with this prefix; labels use these names.
METRIC_NAMESPACE: Final = "volatility"
LABEL_SERVICE: Final = "service"
LABEL_PRODUCT: Final = "product"
LABEL_VARIANT: Final = "model_variant"
LABEL_TOPIC: Final = "topic"
LABEL_REASON: Final = "reason"
# Live model quality: the figure of the variant serving ("active") or scored beside it ("shadow").
LABEL_ROLE: Final = "role"
# Values of LABEL_ROLE: the variant serving, and the one scored beside it without serving.
ROLE_ACTIVE: Final = "active"
ROLE_SHADOW: Final = "shadow"
LABEL_FEATURE: Final = "feature"
