"""Kafka implementation of the bus (confluent-kafka).

Producers are idempotent with acks=all; consumers use cooperative-sticky assignment, never
auto-store offsets, and store a message's offset only after the service has flushed what it
produced for it (``Subscription.done``). On revoke the stored offsets are committed and the
service is told which partitions it lost, so it drops their state.

A stateful service passes a :class:`PartitionState`: each stored offset then carries, in the
commit metadata, the offset from which that partition's state can be rebuilt, and on assignment
the partition is re-read from there, the service suppressing outputs below the committed offset.
Nothing here depends on the cluster's size: bootstrap servers and security come from settings.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from volatility import metrics
from volatility.bus.base import BusUnavailableError, Message, PartitionState, RevokeCallback
from volatility.bus.stall import StallDetector
from volatility.settings import KafkaConsumerSettings, KafkaSettings

__all__ = ["BusUnavailableError", "KafkaBus", "KafkaSubscription", "PartitionState"]

log = logging.getLogger(__name__)

_CHECKPOINT_PREFIX = "rebuild_from="
# topic, partition, key, value, headers
_Resend = tuple[str, int | None, bytes | None, bytes | None, list[tuple[str, bytes]] | None]
_ERROR_LOG_INTERVAL = 5.0


class _ThrottledLog:
    """Logs a repeating error at most every few seconds (a broker outage repeats it per poll)."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def warning(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last.get(text, -_ERROR_LOG_INTERVAL) >= _ERROR_LOG_INTERVAL:
            self._last[text] = now
            log.warning(text)


class KafkaSubscription:
    def __init__(
        self,
        settings: KafkaSettings,
        consumer_settings: KafkaConsumerSettings,
        topic: str,
        group: str,
        service: str,
        on_revoke: RevokeCallback | None,
        state: PartitionState | None,
        tail: int | None = None,
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
            # How soon a crashed member's partitions move to another member.
            "session.timeout.ms": consumer_settings.session_timeout_ms,
            "heartbeat.interval.ms": max(consumer_settings.session_timeout_ms // 6, 100),
        }
        if consumer_settings.group_instance_id:
            # Static membership: a restarted pod with the same id gets its partitions back at
            # once, without a rebalance.
            conf["group.instance.id"] = consumer_settings.group_instance_id
        self._consumer = Consumer(conf)
        self.topic = topic
        self.group = group
        self._service = service
        self._on_revoke = on_revoke
        self._state = state
        self._tail = tail
        self._errors = _ThrottledLog()
        self._lag_partitions: set[int] = set()
        self.rebalances = 0
        self._consumer.subscribe(
            [topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )

    # -- rebalances (called from inside poll) ------------------------------------------------

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        from confluent_kafka import TopicPartition

        self.rebalances += 1
        metrics.REBALANCES.labels(self._service, "assigned").inc(len(partitions))
        if self._tail is not None and partitions:
            tail = self._tail
            consumer.incremental_assign([_tail_start(consumer, tp, tail) for tp in partitions])
            return
        if self._state is None or not partitions:
            return  # the client assigns at the committed offsets by itself
        committed = _committed(consumer, partitions)
        starts: list[Any] = []
        for tp in committed:
            start = tp.offset
            checkpoint = _parse_checkpoint(tp.metadata)
            if tp.offset >= 0 and checkpoint is not None and checkpoint < tp.offset:
                self._state.rebuild(tp.partition, tp.offset)
                start = checkpoint
                log.info(
                    "rebuilding partition state",
                    extra={"partition": tp.partition, "from": checkpoint, "until": tp.offset},
                )
            starts.append(TopicPartition(tp.topic, tp.partition, start))
        consumer.incremental_assign(starts)

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        self.rebalances += 1
        metrics.REBALANCES.labels(self._service, "revoked").inc(len(partitions))
        try:
            consumer.commit(asynchronous=False)
        except Exception as exc:  # nothing stored yet is the usual reason
            log.debug("commit on revoke: %s", exc)
        self._forget([p.partition for p in partitions])

    def _lost(self, consumer: Any, partitions: list[Any]) -> None:
        self.rebalances += 1
        metrics.REBALANCES.labels(self._service, "lost").inc(len(partitions))
        self._forget([p.partition for p in partitions])

    def _forget(self, partitions: list[int]) -> None:
        for p in partitions:
            if p in self._lag_partitions:
                self._lag_partitions.discard(p)
                metrics.CONSUMER_LAG.remove(self.topic, str(p), self.group)
        if self._on_revoke is not None:
            self._on_revoke(partitions)

    # -- Subscription ------------------------------------------------------------------------

    def poll(self, max_messages: int, timeout: float) -> list[Message]:
        # consume() waits for a full batch or the timeout; poll() returns on the first message.
        # Taking whatever is queued, else waiting for one message, keeps latency low at any rate.
        consumer = self._consumer
        raw = consumer.consume(max_messages, 0)
        if not raw:
            first = consumer.poll(timeout)
            if first is None:
                return []
            raw = [first]
            if max_messages > 1:
                raw += consumer.consume(max_messages - 1, 0)
        out: list[Message] = []
        append = out.append
        topic = self.topic
        m: Any
        for m in raw:
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise BusUnavailableError(str(err))
                self._errors.warning(f"consumer: {err}")
                continue
            key = m.key()
            headers = m.headers()
            append(
                Message(
                    topic,
                    key.decode(errors="replace") if key is not None else None,
                    m.value() or b"",
                    m.partition(),
                    m.offset(),
                    tuple((k, v.encode() if isinstance(v, str) else (v or b"")) for k, v in headers)
                    if headers
                    else (),
                )
            )
        return out

    def done(self, messages: Sequence[Message]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        last: dict[int, int] = {}
        for m in messages:
            if m.offset > last.get(m.partition, -1):
                last[m.partition] = m.offset
        if not last:
            return
        state = self._state
        offsets = []
        for p, o in last.items():
            checkpoint = state.checkpoint(p) if state is not None else None
            if checkpoint is None:
                offsets.append(TopicPartition(self.topic, p, o + 1))
            else:
                metadata = f"{_CHECKPOINT_PREFIX}{checkpoint}"
                offsets.append(TopicPartition(self.topic, p, o + 1, metadata=metadata))
        try:
            self._consumer.store_offsets(offsets=offsets)
        except KafkaException as exc:
            # A partition revoked since the batch was polled: its new owner re-reads it.
            log.info("offsets not stored: %s", exc)

    def lag(self) -> dict[int, int]:
        """Per assigned partition: high watermark minus position (from cached fetch data)."""
        consumer = self._consumer
        assignment = consumer.assignment()
        if not assignment:
            return {}
        out: dict[int, int] = {}
        for tp in consumer.position(assignment):
            low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                continue
            position = tp.offset if tp.offset >= 0 else low
            out[tp.partition] = max(high - position, 0)
        return out

    def report_lag(self) -> None:
        for p, lag in self.lag().items():
            self._lag_partitions.add(p)
            metrics.CONSUMER_LAG.labels(self.topic, str(p), self.group).set(lag)

    def close(self) -> None:
        self._consumer.close()  # commits stored offsets and leaves the group


def _committed(consumer: Any, partitions: list[Any], attempts: int = 5) -> list[Any]:
    """Committed offsets and their checkpoints. Without them the state could only warm up,
    skipping vectors, so a broker that cannot answer makes the process restart instead."""
    from confluent_kafka import KafkaException

    for attempt in range(attempts):
        try:
            return list(consumer.committed(partitions, timeout=10))
        except KafkaException as exc:
            log.warning("committed offsets unavailable (attempt %d): %s", attempt + 1, exc)
    raise BusUnavailableError("committed offsets unavailable; restarting to rebuild state")


def _tail_start(consumer: Any, tp: Any, tail: int) -> Any:
    """Where a subscription with ``tail`` starts reading ``tp``."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

    try:
        low, high = consumer.get_watermark_offsets(tp, timeout=5.0, cached=False)
    except KafkaException as exc:
        log.warning(
            "partition end unknown, reading it from the start",
            extra={"partition": tp.partition, "error": str(exc)},
        )
        return TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING)
    return TopicPartition(tp.topic, tp.partition, max(low, high - tail))


def _parse_checkpoint(metadata: str | None) -> int | None:
    if not metadata or not metadata.startswith(_CHECKPOINT_PREFIX):
        return None
    try:
        value = int(metadata[len(_CHECKPOINT_PREFIX) :])
    except ValueError:
        return None
    return value if value >= 0 else None


class KafkaBus:
    def __init__(
        self,
        settings: KafkaSettings,
        *,
        consumer_settings: KafkaConsumerSettings | None = None,
        service: str = "kafka",
    ) -> None:
        self._settings = settings
        self._consumer_settings = consumer_settings or KafkaConsumerSettings()
        self._service = service
        self._errors = 0
        self._log = _ThrottledLog()
        self._stalls = StallDetector(settings.producer_stall_seconds)
        self._next_watch = 0.0
        self._next_leader_check = 0.0
        self._salvage: _Salvage | None = None
        self._numbers = itertools.count()
        self._producer = self._new_producer()

    def _new_producer(self) -> Any:
        from confluent_kafka import Producer

        return Producer(
            {
                **self._settings.client_config(),
                "enable.idempotence": True,
                "acks": "all",
                # Services flush every batch (which sends at once), so linger only groups the
                # ingest's single ticks; keep it short for latency.
                "linger.ms": 1,
                "compression.type": "lz4",
                # Successful deliveries are known from flush(); a report per message would cost
                # a Python callback per message.
                "delivery.report.only.error": True,
                "error_cb": self._client_error,
                "statistics.interval.ms": 1000,
                "stats_cb": self._on_stats,
            }
        )

    @property
    def delivery_errors(self) -> int:
        return self._errors

    def _client_error(self, err: Any) -> None:
        if err.fatal():
            log.error("producer fatal error: %s", err)
        else:
            self._log.warning(f"producer: {err}")

    def _on_stats(self, document: str) -> None:
        self._stalls.observe(json.loads(document), time.monotonic())

    def _delivered(self, number: int, err: Any, msg: Any) -> None:
        # ``number`` is the message's place in produce order: a purge hands messages back in
        # no particular order, and a replacement must re-send them in the original one.
        if err is not None and self._salvage is not None and self._salvage.take(number, err, msg):
            return
        if err is not None:
            self._errors += 1
            metrics.DELIVERY_ERRORS.labels(self._service).inc()
            log.error("delivery failed: %s", err)

    def publish(
        self,
        topic: str,
        key: str | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self._watch()
        self._send(topic, key, value, list(headers) or None)

    def _send(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        partition: int | None = None,
    ) -> None:
        """One message, numbered in produce order; waits while the local queue is full."""
        placed = {} if partition is None or partition < 0 else {"partition": partition}
        delivered = partial(self._delivered, next(self._numbers))
        while True:
            try:
                self._producer.produce(
                    topic, value, key, headers=headers, on_delivery=delivered, **placed
                )
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: serve callbacks, then retry

    def publish_many(self, topic: str, items: Sequence[tuple[str | None, bytes]]) -> None:
        """Publish keyed values in order (the hot path: no per-message Python work but one
        produce call)."""
        self._watch()
        produce = self._producer.produce
        delivered, numbers = self._delivered, self._numbers
        for key, value in items:
            on_delivery = partial(delivered, next(numbers))
            while True:
                try:
                    produce(topic, value, key, on_delivery=on_delivery)
                    break
                except BufferError:
                    self._producer.poll(0.05)

    def subscribe(
        self,
        topic: str,
        group: str,
        on_revoke: RevokeCallback | None = None,
        *,
        state: PartitionState | None = None,
        tail: int | None = None,
    ) -> KafkaSubscription:
        return KafkaSubscription(
            self._settings,
            self._consumer_settings,
            topic,
            group,
            self._service,
            on_revoke,
            state,
            tail,
        )

    def flush(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            pending = int(self._producer.flush(max(0.0, min(1.0, left))))
            if not pending or left <= 1.0:
                return pending
            self._recover_if_stalled()

    def _watch(self) -> None:
        """At most once a second on the publish path: serve callbacks, look for stalls."""
        now = time.monotonic()
        if now >= self._next_watch:
            self._next_watch = now + 1.0
            self._producer.poll(0)
            self._recover_if_stalled()

    def _recover_if_stalled(self) -> None:
        now = time.monotonic()
        stalled = self._stalls.stalled(now)
        if not stalled or now < self._next_leader_check:
            return
        # A broker that is down or has no leader for the partition explains the stall, and a
        # new producer would not help: ask again a stall period later.
        self._next_leader_check = now + max(self._stalls.after, 1.0)
        if self._broker_serves(stalled):
            self._replace_producer(stalled)

    def _broker_serves(self, partitions: Sequence[tuple[str, int]]) -> bool:
        from confluent_kafka import KafkaException

        for topic in sorted({t for t, _ in partitions}):
            try:
                meta = self._producer.list_topics(topic, timeout=2.0).topics.get(topic)
            except KafkaException:
                return False
            if meta is None or meta.error is not None:
                return False
            for t, p in partitions:
                if t == topic and (p not in meta.partitions or meta.partitions[p].leader < 0):
                    return False
        return True

    def _replace_producer(self, stalled: Sequence[tuple[str, int]]) -> None:
        """Move every undelivered message to a new producer, in order per partition.

        Queued messages are purged and kept; requests already in flight finish on the old
        producer first, so that nothing sent later overtakes them. One the broker leaves
        unanswered for 30 s fails as any undelivered message does.
        """
        old, salvage = self._producer, _Salvage()
        self._salvage = salvage
        try:
            old.purge(in_queue=True, in_flight=False)
            if old.flush(30.0):
                old.purge(in_queue=True, in_flight=True)
                old.flush(1.0)
        finally:
            self._salvage = None
        self._stalls.reset()
        self._producer = self._new_producer()
        messages = salvage.in_order()
        for topic, partition, key, value, headers in messages:
            # Keep the partition it had; a message not yet partitioned goes by its key.
            self._send(topic, key, value, headers, partition)
        metrics.PRODUCER_REPLACEMENTS.labels(self._service).inc()
        log.warning(
            "replaced a producer that had stopped sending to partitions the broker serves",
            extra={"partitions": [f"{t}[{p}]" for t, p in stalled], "resent": len(messages)},
        )

    def close(self) -> None:
        self.flush()

    def check_topics(self, topics: Sequence[str], timeout: float = 10.0) -> None:
        """Fail fast with a clear message when the broker or a topic is missing."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        conf: dict[str, Any] = {**self._settings.client_config(), "logger": _SilentLogger()}
        admin = AdminClient(conf)
        try:
            meta = admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise BusUnavailableError(
                f"cannot reach Kafka at {self._settings.bootstrap_servers} "
                f"within {timeout:.0f}s: {exc.args[0].str() if exc.args else exc}"
            ) from exc
        missing = [t for t in topics if t not in meta.topics or meta.topics[t].error is not None]
        if missing:
            raise BusUnavailableError(
                f"topics missing on {self._settings.bootstrap_servers}: {', '.join(missing)} "
                "(create them with `volatility kafka init`)"
            )


class _Salvage:
    """The messages a purge of the queue handed back, to be re-sent in produce order."""

    def __init__(self) -> None:
        self._messages: list[tuple[int, _Resend]] = []

    def take(self, number: int, err: Any, msg: Any) -> bool:
        from confluent_kafka import KafkaError

        if err.code() != KafkaError._PURGE_QUEUE:
            return False
        resend = (msg.topic(), msg.partition(), msg.key(), msg.value(), msg.headers() or None)
        self._messages.append((number, resend))
        return True

    def in_order(self) -> list[_Resend]:
        return [resend for _, resend in sorted(self._messages, key=lambda m: m[0])]


class _SilentLogger(logging.Logger):
    """librdkafka logs every failed connection attempt; the caller reports the outcome once."""

    def __init__(self) -> None:
        super().__init__("volatility.bus.kafka.admin", logging.CRITICAL)
