"""A harness for the Kafka pipeline as it runs in production: `volatility` processes on a real
broker (services as subprocesses, topics per test, reading a topic back, the vectors a recording
implies), shared by the pipeline, fault and dead-letter tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.infra.kafka_broker import KafkaBroker, TopicFactory
from tests.infra.ports import free_port
from tests.stream_reference import Key, reference_by_key
from volatility.messages import decode_features, decode_prediction
from volatility.ticks import StreamRecord

VOLATILITY = Path(sys.executable).with_name("volatility")
PARTITIONS = 3
# The broker's group.min.session.timeout.ms: a killed member's partitions move after this.
SESSION_TIMEOUT_MS = 6000

__all__ = ["Key", "Pipeline", "PredictionLog", "Service", "TopicReader", "wait_for"]


def fresh_topic_env(prefix: str) -> dict[str, str]:
    """The KAFKA_TOPIC_* settings of four topics no other run names (nothing is created)."""
    suffix = uuid.uuid4().hex[:8]
    return {
        f"KAFKA_TOPIC_{role.upper()}": f"{prefix}-{role}-{suffix}"
        for role in ("ticks", "features", "predictions", "deadletter")
    }


def expected_keys(records: Iterable[StreamRecord]) -> set[Key]:
    """(product, event time) of every vector the ticks-topic ``records`` imply."""
    return set(reference_by_key(records))


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    metrics_port: int
    log_path: Path
    _log: IO[bytes]

    def metric(self, line_prefix: str) -> float:
        """Sum of the samples whose line starts with ``line_prefix`` (0 when absent)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as resp:
            text = resp.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(line_prefix)
        )

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@dataclass
class Pipeline:
    """One isolated pipeline (own topics and groups) on the shared test broker."""

    broker: KafkaBroker
    workdir: Path
    ticks: str
    features: str
    predictions: str
    deadletter: str
    group_suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    services: list[Service] = field(default_factory=list)

    @classmethod
    def create(
        cls, broker: KafkaBroker, topics: TopicFactory, workdir: Path, partitions: int = PARTITIONS
    ) -> Pipeline:
        return cls(
            broker,
            workdir,
            ticks=topics(partitions),
            features=topics(partitions),
            predictions=topics(partitions),
            deadletter=topics(1),
        )

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.broker.bootstrap_servers,
            KAFKA_TOPIC_TICKS=self.ticks,
            KAFKA_TOPIC_FEATURES=self.features,
            KAFKA_TOPIC_PREDICTIONS=self.predictions,
            KAFKA_TOPIC_DEADLETTER=self.deadletter,
            KAFKA_GROUP_FEATURIZER=f"featurizer-{self.group_suffix}",
            KAFKA_GROUP_CONSUMER=f"consumer-{self.group_suffix}",
            KAFKA_CONSUMER_SESSION_TIMEOUT_MS=str(SESSION_TIMEOUT_MS),
            KAFKA_CONSUMER_LAG_INTERVAL_SECONDS="0.5",
            LOG_FORMAT="text",
        )
        env.update(extra)
        return env

    def start(self, command: str, **env: str) -> Service:
        port = free_port()
        index = sum(s.name == command for s in self.services)
        log_path = self.workdir / f"{command}-{index}.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [str(VOLATILITY), command],
            env=self.env(METRICS_PORT=str(port), **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        service = Service(command, proc, port, log_path, log)
        self.services.append(service)
        wait_for(lambda: _ready(service), 60, f"{command} ready", service)
        return service

    def replay(self, files: Iterable[Path], speed: str = "max") -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(VOLATILITY), "replay", *map(str, files), "--to-kafka", "--speed", speed],
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def producer(self) -> Producer:
        return Producer(
            {
                "bootstrap.servers": self.broker.bootstrap_servers,
                "enable.idempotence": True,
                "acks": "all",
            }
        )

    def close(self) -> None:
        for service in self.services:
            if service.proc.poll() is None:
                service.kill()
            service._log.close()


def _ready(service: Service) -> bool:
    if service.proc.poll() is not None:
        raise AssertionError(
            f"{service.name} exited with {service.proc.returncode}:\n{service.log_text()}"
        )
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{service.metrics_port}/readyz", timeout=2
        ) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], timeout: float, what: str, *services: Service) -> float:
    """Poll ``condition`` until true; return the seconds it took. Fails with service logs."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            logs = "\n".join(f"--- {s.name}:\n{s.log_text()[-3000:]}" for s in services)
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(0.1)  # polling interval of a deadline-bounded wait
    return time.monotonic() - started


class TopicReader:
    """Reads a whole topic from the beginning, incrementally, outside any consumer group."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        self._consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self.messages: list[tuple[bytes, dict[str, bytes]]] = []

    def read(self, max_seconds: float = 0.5) -> int:
        """Take what has arrived (waiting at most ``max_seconds``); return how many were new."""
        new = 0
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            batch = self._consumer.consume(10_000, 0.1)
            for m in batch:
                if m.error() is None:
                    raw: list[tuple[str, bytes | None]] = m.headers() or []  # type: ignore[assignment]
                    headers = {k: v or b"" for k, v in raw}
                    self.messages.append((m.value() or b"", headers))
                    new += 1
            if not batch and new:
                break
        return new

    def close(self) -> None:
        self._consumer.close()


class PredictionLog(TopicReader):
    def keys(self) -> Counter[Key]:
        out: Counter[Key] = Counter()
        for value, _ in self.messages:
            p = decode_prediction(value)
            out[(p.product_id, p.event_time)] += 1
        return out

    def wait_for_keys(self, expected: set[Key], timeout: float, *services: Service) -> None:
        def covered() -> bool:
            self.read()
            return expected <= set(self.keys())

        try:
            wait_for(covered, timeout, "predictions for every expected vector", *services)
        except AssertionError as exc:
            missing = sorted(expected - set(self.keys()))
            raise AssertionError(
                f"{len(missing)} vectors never predicted, e.g. {missing[:5]}\n{exc}"
            ) from None


def assert_one_value_per_key(log: TopicReader, label: str) -> Counter[Key]:
    """Every copy of a (product, second) on the topic is byte-identical (at-least-once may
    deliver a message twice, never with another value); returns the copies per key."""
    copies: dict[Key, set[bytes]] = {}
    counts: Counter[Key] = Counter()
    for value, _ in log.messages:
        doc = decode_prediction(value) if isinstance(log, PredictionLog) else decode_features(value)
        key = (doc.product_id, doc.event_time)
        copies.setdefault(key, set()).add(value)
        counts[key] += 1
    different = {k: sorted(v) for k, v in copies.items() if len(v) > 1}
    assert not different, f"[{label}] keys published with different values: {different}"
    duplicates = sum(n - 1 for n in counts.values())
    print(f"\n[{label}] {len(counts)} keys, {duplicates} byte-identical duplicates")
    return counts


def assert_features_equal_reference(
    features: TopicReader, reference: dict[Key, tuple[float, ...]], label: str
) -> None:
    """The features topic holds exactly the reference vectors, at the float32 precision that
    the documents carry."""
    got = {}
    for value, _ in features.messages:
        vec = decode_features(value)
        got[vec.product_id, vec.event_time] = np.array(vec.values, dtype=np.float32)
    missing, extra = sorted(set(reference) - set(got)), sorted(set(got) - set(reference))
    assert not missing and not extra, f"[{label}] missing {missing[:5]}, extra {extra[:5]}"
    wrong = [
        k for k, v in reference.items() if not np.array_equal(got[k], np.array(v, dtype=np.float32))
    ]
    assert not wrong, f"[{label}] {len(wrong)} vectors differ from the reference, e.g. {wrong[:3]}"
