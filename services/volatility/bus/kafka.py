"""Kafka implementation of the bus (confluent-kafka).

Producers are idempotent with acks=all; consumers use cooperative-sticky assignment, never
auto-store offsets, and store a message's offset only after the service has flushed what it
produced for it (``Subscription.done``). On revoke the stored offsets are committed and the
service is told which partitions it lost, so it drops their state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from volatility.bus.base import Message, RevokeCallback, Subscription
from volatility.settings import KafkaSettings

log = logging.getLogger(__name__)


class BusUnavailableError(RuntimeError):
    """The broker cannot be reached or a required topic does not exist."""


class _KafkaSubscription:
    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        group: str,
        on_revoke: RevokeCallback | None,
    ) -> None:
        from confluent_kafka import Consumer

        conf: dict[str, Any] = {
            **settings.client_config(),
            "group.id": group,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
        }
        self._consumer = Consumer(conf)
        self._topic = topic
        self._on_revoke = on_revoke
        self.rebalances = 0

        def revoked(consumer: Any, partitions: list[Any]) -> None:
            self.rebalances += 1
            try:
                consumer.commit(asynchronous=False)
            except Exception as exc:
                log.debug("commit on revoke: %s", exc)
            if self._on_revoke is not None:
                self._on_revoke([p.partition for p in partitions])

        def lost(consumer: Any, partitions: list[Any]) -> None:
            self.rebalances += 1
            if self._on_revoke is not None:
                self._on_revoke([p.partition for p in partitions])

        self._consumer.subscribe([topic], on_revoke=revoked, on_lost=lost)

    def poll(self, max_messages: int, timeout: float) -> list[Message]:
        raw = self._consumer.consume(num_messages=max_messages, timeout=timeout)
        out: list[Message] = []
        for m in raw:
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise BusUnavailableError(str(err))
                log.warning("consumer error: %s", err)
                continue
            key = m.key()
            headers = m.headers() or []
            out.append(
                Message(
                    topic=m.topic() or self._topic,
                    key=key.decode() if isinstance(key, bytes) else key,
                    value=m.value() or b"",
                    partition=m.partition() or 0,
                    offset=m.offset() or 0,
                    headers=tuple(
                        (k, v.encode() if isinstance(v, str) else (v or b""))
                        for k, v in (headers.items() if isinstance(headers, dict) else headers)
                    ),
                )
            )
        return out

    def done(self, messages: Sequence[Message]) -> None:
        from confluent_kafka import TopicPartition

        last: dict[tuple[str, int], int] = {}
        for m in messages:
            last[(m.topic, m.partition)] = max(last.get((m.topic, m.partition), -1), m.offset)
        if last:
            self._consumer.store_offsets(
                offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
            )

    def close(self) -> None:
        self._consumer.close()  # commits stored offsets and leaves the group


class KafkaBus:
    def __init__(self, settings: KafkaSettings) -> None:
        from confluent_kafka import Producer

        self._settings = settings
        self._errors = 0
        self._producer = Producer(
            {
                **settings.client_config(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
            }
        )

    @property
    def delivery_errors(self) -> int:
        return self._errors

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors += 1
            log.error("delivery failed: %s", err)

    def publish(
        self,
        topic: str,
        key: str | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=list(headers), on_delivery=self._delivered
                )
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: serve callbacks, then retry
        self._producer.poll(0)

    def subscribe(
        self, topic: str, group: str, on_revoke: RevokeCallback | None = None
    ) -> Subscription:
        return _KafkaSubscription(self._settings, topic, group, on_revoke)

    def flush(self, timeout: float = 10.0) -> int:
        return int(self._producer.flush(timeout))

    def close(self) -> None:
        self.flush()

    def check_topics(self, topics: Sequence[str], timeout: float = 10.0) -> None:
        """Fail fast with a clear message when the broker or a topic is missing."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(self._settings.client_config())
        try:
            meta = admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise BusUnavailableError(
                f"cannot reach Kafka at {self._settings.bootstrap_servers}: {exc}"
            ) from exc
        missing = [t for t in topics if t not in meta.topics]
        if missing:
            raise BusUnavailableError(
                f"topics missing on {self._settings.bootstrap_servers}: {', '.join(missing)} "
                "(create them with `volatility kafka init`)"
            )
