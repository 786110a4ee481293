"""Crashes and outages on the real broker: every vector the input implies is still predicted.

Services run as real processes and are killed with SIGKILL (no shutdown code runs); the broker
is restarted under load. Duplicates are allowed (at-least-once) and reported; losses are not.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.infra.kafka_broker import KafkaBroker, free_port
from tests.kafka.pipeline import (
    PARTITIONS,
    VOLATILITY,
    Key,
    Pipeline,
    PredictionLog,
    Service,
    expected_keys,
    report_duplicates,
    wait_for,
)
from volatility.exchange.recordings import iter_ticks

# Fast enough to finish in seconds, slow enough that the kills land mid-stream.
REPLAY_SPEED = "400"


@dataclass
class _Run:
    """Featurizer and consumer processes scoring a replay of the longest two-product recording."""

    expected: set[Key]
    featurizer: Service
    consumer: Service
    log: PredictionLog
    replay: subprocess.Popen[bytes]

    @classmethod
    def start(cls, pipeline: Pipeline, recordings: list[Path]) -> _Run:
        recording = max(
            (r for r in recordings if "btc-eth" in r.name), key=lambda r: r.stat().st_size
        )
        expected = expected_keys(iter_ticks([recording]))
        featurizer = pipeline.start("featurize")
        consumer = pipeline.start("consume")
        log = PredictionLog(pipeline.broker.bootstrap_servers, pipeline.predictions, PARTITIONS)
        replay = pipeline.replay([recording], speed=REPLAY_SPEED)
        return cls(expected, featurizer, consumer, log, replay)

    def predicted_at_least(self, n: int) -> bool:
        self.log.read(0.2)
        return len(self.log.messages) >= n


def test_sigkill_of_featurizer_then_consumer_loses_no_prediction(
    pipeline: Pipeline,
    recordings: list[Path],
) -> None:
    run = _Run.start(pipeline, recordings)
    expected, log, replay = run.expected, run.log, run.replay
    featurizer, consumer, predicted_at_least = run.featurizer, run.consumer, run.predicted_at_least
    wait_for(lambda: predicted_at_least(len(expected) // 5), 90, "first predictions", featurizer)
    assert replay.poll() is None, "the replay ended before the featurizer was killed"
    featurizer.kill()
    featurizer = pipeline.start("featurize")
    wait_for(lambda: predicted_at_least(len(expected) // 2), 90, "progress", featurizer, consumer)
    consumer.kill()
    consumer = pipeline.start("consume")
    _, err = replay.communicate(timeout=120)
    assert replay.returncode == 0, err

    log.wait_for_keys(expected, 120, featurizer, consumer)
    report_duplicates(log, expected, "featurizer and consumer killed")
    # The restarted featurizer rebuilt its windows from the checkpoint instead of warming up.
    assert featurizer.metric("volatility_state_rebuild_messages_total") > 0
    assert "rebuilding partition state" in featurizer.log_text()
    log.close()
    assert featurizer.stop() == 0
    assert consumer.stop() == 0


def test_broker_restart_mid_stream_recovers_by_itself(
    pipeline: Pipeline,
    kafka_broker: KafkaBroker,
    recordings: list[Path],
) -> None:
    run = _Run.start(pipeline, recordings)
    expected, log, replay = run.expected, run.log, run.replay
    featurizer, consumer, predicted_at_least = run.featurizer, run.consumer, run.predicted_at_least
    wait_for(lambda: predicted_at_least(len(expected) // 4), 90, "first predictions", featurizer)
    kafka_broker.restart()
    before = len(log.messages)
    recovery = wait_for(
        lambda: predicted_at_least(before + 100), 30, "predictions after the restart", consumer
    )
    print(f"\n[broker restart] predictions flowing again {recovery:.1f}s after the broker was up")
    _, err = replay.communicate(timeout=120)
    assert replay.returncode == 0, err
    log.wait_for_keys(expected, 60, featurizer, consumer)
    report_duplicates(log, expected, "broker restarted")
    assert featurizer.proc.poll() is None and consumer.proc.poll() is None
    log.close()
    assert featurizer.stop() == 0
    assert consumer.stop() == 0


def test_services_fail_fast_without_broker_or_topics(
    pipeline: Pipeline,
) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    run = subprocess.run(
        [str(VOLATILITY), "featurize"],
        env=pipeline.env(KAFKA_BOOTSTRAP_SERVERS=nobody, METRICS_PORT=str(free_port())),
        capture_output=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert run.returncode != 0
    assert elapsed < 15, f"took {elapsed:.1f}s to give up"
    assert f"cannot reach Kafka at {nobody}".encode() in run.stdout + run.stderr

    missing = "no-such-topic-" + os.urandom(4).hex()
    run = subprocess.run(
        [str(VOLATILITY), "consume"],
        env=pipeline.env(KAFKA_TOPIC_FEATURES=missing, METRICS_PORT=str(free_port())),
        capture_output=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert f"topics missing on {pipeline.broker.bootstrap_servers}: {missing}".encode() in (
        run.stdout + run.stderr
    )
