"""A producer that stops sending is replaced without losing or reordering a message.

librdkafka can strand a partition after a broker restart (see ``volatility.bus.stall``); the
bus then moves every undelivered message to a new producer. Here the stall period is zero, so
the real path (statistics, stall, the broker confirming it serves the partition, replacement)
runs again and again under load, and once more with the broker frozen so that requests are in
flight when it happens. Every message must arrive, in order per key; a copy may arrive twice.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import defaultdict

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import REGISTRY

from tests.infra.kafka_broker import KafkaBroker, TopicFactory
from volatility.bus.kafka import KafkaBus
from volatility.settings import KafkaSettings

PARTITIONS = 3
KEYS = [f"key-{i}" for i in range(12)]
SERVICE = "replacement-test"


def _replacements() -> float:
    value = REGISTRY.get_sample_value(
        "volatility_producer_replacements_total", {"service": SERVICE}
    )
    return value or 0.0


def _read_all(bootstrap: str, topic: str, expected: int) -> dict[str, list[int]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen: dict[str, list[int]] = defaultdict(list)
    distinct: set[tuple[str, int]] = set()
    deadline = time.monotonic() + 60
    try:
        while len(distinct) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                assert msg.error() is None, msg.error()
                value = msg.value()
                assert value is not None
                key, seq = value.decode().split(":")
                seen[key].append(int(seq))
                distinct.add((key, int(seq)))
    finally:
        consumer.close()
    return seen


def test_replaced_producers_lose_and_reorder_nothing(
    kafka_broker: KafkaBroker, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics(partitions=PARTITIONS)
    bus = KafkaBus(
        KafkaSettings(bootstrap_servers=kafka_broker.bootstrap_servers, producer_stall_seconds=0.0),
        service=SERVICE,
    )
    seq = 0

    def publish(rounds: int) -> None:
        nonlocal seq
        for _ in range(rounds):
            bus.publish_many(topic, [(k, f"{k}:{seq}".encode()) for k in KEYS])
            seq += 1

    deadline = time.monotonic() + 90
    while _replacements() < 3:
        assert time.monotonic() < deadline, "the producer was never replaced under load"
        publish(500)

    # The broker frozen for 2 s: requests are in flight when the producer is replaced (it is
    # connected first, so that it sends them); they must land before the re-sent queue.
    assert bus.flush(30.0) == 0
    before = _replacements()
    pid = kafka_broker.pid
    assert pid is not None
    thaw = threading.Timer(2.0, os.kill, (pid, signal.SIGCONT))
    os.kill(pid, signal.SIGSTOP)
    try:
        thaw.start()
        publish(200)
        bus._replace_producer([(topic, p) for p in range(PARTITIONS)])
        publish(200)
    finally:
        thaw.cancel()
        os.kill(pid, signal.SIGCONT)
    assert _replacements() >= before + 1
    assert bus.flush(60.0) == 0
    assert bus.delivery_errors == 0

    seen = _read_all(kafka_broker.bootstrap_servers, topic, seq * len(KEYS))
    for key in KEYS:
        arrived = 0  # messages 0..arrived-1 of this key have arrived, in order
        for s in seen[key]:
            if s < arrived:
                continue  # a re-sent copy of one that had already arrived
            assert s == arrived, f"{key}: expected message {arrived} next, got {s}"
            arrived += 1
        assert arrived == seq, f"{key}: {seq - arrived} messages lost"
