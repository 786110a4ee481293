"""The broker is a real Kafka: idempotent keyed produce, group consumption, durable offsets."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.infra.kafka_broker import KafkaBroker, TopicFactory

PARTITIONS = 3
KEYS = [f"BTC-USD-{i}" for i in range(24)]


def produce_keyed(bootstrap: str, topic: str, per_key: int) -> dict[str, list[tuple[int, int]]]:
    """Produce ``per_key`` messages for every key; return key -> [(partition, offset)] in order."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    placed: dict[str, list[tuple[int, int]]] = defaultdict(list)
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
            return
        key = msg.key()
        partition, offset = msg.partition(), msg.offset()
        assert key is not None and partition is not None and offset is not None
        placed[key.decode()].append((partition, offset))

    for seq in range(per_key):
        for key in KEYS:
            producer.produce(topic, key=key, value=f"{key}:{seq}", on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} messages undelivered after 30 s"
    assert errors == []
    return placed


def group_consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "partition.assignment.strategy": "cooperative-sticky",
            "auto.offset.reset": "earliest",
            # Offsets are stored by the application after it has handled a message; the
            # commit (automatic or explicit) only ever sends what was stored.
            "enable.auto.offset.store": False,
        }
    )


def consume(
    consumer: Consumer,
    count: int,
    timeout: float = 60.0,
    on_message: Callable[[Message], None] | None = None,
) -> list[Message]:
    """Poll until ``count`` messages arrived (storing each offset) or the deadline passes."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        err = msg.error()
        assert err is None, err
        consumer.store_offsets(message=msg)
        got.append(msg)
        if on_message is not None:
            on_message(msg)
    assert len(got) == count, f"consumed {len(got)} of {count} within {timeout} s"
    return got


def decoded(messages: list[Message]) -> list[str]:
    out = []
    for msg in messages:
        value = msg.value()
        assert isinstance(value, bytes)
        out.append(value.decode())
    return out


def test_idempotent_keyed_produce_roundtrips_through_a_cooperative_group(
    kafka_broker: KafkaBroker,
    kafka_admin: AdminClient,
    kafka_topics: TopicFactory,
) -> None:
    topic = kafka_topics(partitions=PARTITIONS)
    per_key = 25
    placed = produce_keyed(kafka_broker.bootstrap_servers, topic, per_key)

    # Keys map to one partition each, offsets grow in send order, and all partitions are used.
    for key, spots in placed.items():
        assert len(spots) == per_key
        assert len({partition for partition, _ in spots}) == 1, key
        offsets = [offset for _, offset in spots]
        assert offsets == sorted(offsets), key
    assert {spots[0][0] for spots in placed.values()} == set(range(PARTITIONS))

    group = f"{topic}-group"
    consumer = group_consumer(kafka_broker.bootstrap_servers, group)
    consumer.subscribe([topic])
    try:
        messages = consume(consumer, per_key * len(KEYS))
        consumer.commit(asynchronous=False)
        committed = consumer.committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10
        )
        description = kafka_admin.describe_consumer_groups([group])[group].result(10)
    finally:
        consumer.close()

    values = decoded(messages)
    assert len(values) == len(set(values)) == per_key * len(KEYS)
    by_key: dict[str, list[int]] = defaultdict(list)
    for value in values:
        key, seq = value.rsplit(":", 1)
        by_key[key].append(int(seq))
    assert all(seqs == list(range(per_key)) for seqs in by_key.values())

    # The committed offset of each partition is its end: every stored offset was committed.
    ends: dict[int, int] = defaultdict(int)
    for spots in placed.values():
        partition, last = spots[-1]
        ends[partition] = max(ends[partition], last + 1)
    assert {tp.partition: tp.offset for tp in committed} == dict(ends)

    assert description.partition_assignor == "cooperative-sticky"
    assigned = {tp.partition for m in description.members for tp in m.assignment.topic_partitions}
    assert assigned == set(range(PARTITIONS))

    # The metadata comes from the broker this fixture formatted, not from whatever else listens.
    meta = (kafka_broker.data_dir / "meta.properties").read_text()
    assert f"cluster.id={kafka_admin.list_topics(timeout=10).cluster_id}" in meta


@pytest.mark.parametrize("how", ["graceful", "crash"])
def test_committed_offset_survives_broker_restart(
    kafka_broker: KafkaBroker,
    kafka_topics: TopicFactory,
    how: str,
) -> None:
    topic = kafka_topics(partitions=PARTITIONS)
    per_key = 5
    total = per_key * len(KEYS)
    produce_keyed(kafka_broker.bootstrap_servers, topic, per_key)
    group = f"{topic}-group"
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    first = group_consumer(kafka_broker.bootstrap_servers, group)
    first.subscribe([topic])
    try:
        before = consume(first, total // 2)
        first.commit(asynchronous=False)
        committed_before = {
            tp.partition: tp.offset for tp in first.committed(partitions, timeout=10)
        }
    finally:
        first.close()
    assert sum(max(offset, 0) for offset in committed_before.values()) == total // 2

    old_pid = kafka_broker.pid
    if how == "crash":
        kafka_broker.kill()
    kafka_broker.restart()
    assert kafka_broker.pid != old_pid

    second = group_consumer(kafka_broker.bootstrap_servers, group)
    try:
        committed_after = {
            tp.partition: tp.offset for tp in second.committed(partitions, timeout=30)
        }
        assert committed_after == committed_before
        second.subscribe([topic])
        after = consume(second, total - total // 2)
        # Nothing more arrives: the group resumed exactly at the committed offsets.
        assert second.poll(1.0) is None
    finally:
        second.close()

    seen_before, seen_after = set(decoded(before)), set(decoded(after))
    assert seen_before.isdisjoint(seen_after)
    assert len(seen_before | seen_after) == total
