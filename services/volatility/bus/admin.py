"""Topic administration: create the pipeline's topics from configuration."""

from __future__ import annotations

import logging

from volatility.names import TOPIC_DEADLETTER, TOPIC_FEATURES, TOPIC_PREDICTIONS, TOPIC_TICKS
from volatility.settings import KafkaSettings

log = logging.getLogger(__name__)

PIPELINE_TOPICS = (TOPIC_TICKS, TOPIC_FEATURES, TOPIC_PREDICTIONS, TOPIC_DEADLETTER)


def create_topics(settings: KafkaSettings, timeout: float = 30.0) -> dict[str, str]:
    """Create missing topics; return each topic's outcome ("created" or "exists")."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    from volatility.bus.kafka import BusUnavailableError

    admin = AdminClient(settings.client_config())
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BusUnavailableError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}"
        ) from exc
    config = {"retention.ms": str(settings.topic_retention_ms)}
    futures = admin.create_topics(
        [
            NewTopic(
                t,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                config=config,
            )
            for t in PIPELINE_TOPICS
        ],
        request_timeout=timeout,
    )
    outcome: dict[str, str] = {}
    for topic, future in futures.items():
        try:
            future.result()
            outcome[topic] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            outcome[topic] = "exists"
    return outcome
