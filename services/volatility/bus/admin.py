"""Topic administration: create the pipeline's topics from configuration."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from volatility.names import TOPIC_DEADLETTER, TOPIC_FEATURES, TOPIC_PREDICTIONS, TOPIC_TICKS
from volatility.settings import KafkaSettings

log = logging.getLogger(__name__)

PIPELINE_TOPICS = (TOPIC_TICKS, TOPIC_FEATURES, TOPIC_PREDICTIONS, TOPIC_DEADLETTER)


def create_topics(
    settings: KafkaSettings, timeout: float = 30.0, topics: Sequence[str] = PIPELINE_TOPICS
) -> dict[str, str]:
    """Create missing topics; log and return each topic's outcome ("created" or "exists").

    Partitions, replication and retention come from settings; an existing topic is left as it
    is (partitions are never changed here: that would move keys between partitions).
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    from volatility.bus.kafka import BusUnavailableError

    admin = AdminClient(settings.client_config())
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise BusUnavailableError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}"
        ) from exc
    config = {"retention.ms": str(settings.topic_retention_ms)}
    outcome = {t: "exists" for t in topics if t in existing}
    missing = [t for t in topics if t not in existing]
    if not missing:
        return _logged(outcome)
    futures = admin.create_topics(
        [
            NewTopic(
                t,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                config=config,
            )
            for t in missing
        ],
        request_timeout=timeout,
    )
    for topic, future in futures.items():
        try:
            future.result()
            outcome[topic] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            outcome[topic] = "exists"
    _wait_for_leaders(admin, missing, time.monotonic() + timeout)
    return _logged(outcome)


def _logged(outcome: dict[str, str]) -> dict[str, str]:
    for topic, result in outcome.items():
        log.info("topic %s %s", topic, result, extra={"topic": topic, "outcome": result})
    return outcome


def _wait_for_leaders(admin: Any, topics: Sequence[str], deadline: float) -> None:
    """Creation returns once the controller has the topic; services started right after need
    every partition to have a leader, or they would report the topic missing."""
    while True:
        meta = admin.list_topics(timeout=max(deadline - time.monotonic(), 1.0)).topics
        if all(
            t in meta
            and meta[t].error is None
            and all(p.leader >= 0 for p in meta[t].partitions.values())
            for t in topics
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without a leader: {', '.join(topics)}")
        time.sleep(0.1)  # a metadata poll with a deadline
