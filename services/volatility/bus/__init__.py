"""The message bus the services talk through: Kafka in a cluster, in-process when embedded."""

from volatility.bus.base import Bus, Message, Subscription

__all__ = ["Bus", "Message", "Subscription"]
