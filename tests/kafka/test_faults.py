"""Crashes, outages and stalls on the real broker: every vector the input implies is predicted,
with one value per key.

Services run as real processes and are killed with SIGKILL (no shutdown code runs) or stopped
with SIGSTOP; the broker is restarted under load. Duplicates are allowed (at-least-once) only as
byte-identical copies; losses are not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.infra.kafka_broker import KafkaBroker
from tests.infra.ports import free_port
from tests.kafka.pipeline import (
    PARTITIONS,
    VOLATILITY,
    Key,
    Pipeline,
    PredictionLog,
    Service,
    TopicReader,
    assert_features_equal_reference,
    assert_one_value_per_key,
    expected_keys,
    wait_for,
)
from tests.stream_reference import reference_by_key, replayed
from volatility.exchange.protocol import FrameError, parse_frame
from volatility.exchange.recordings import iter_ticks
from volatility.ticks import StreamRecord

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
        expected = expected_keys(replayed(iter_ticks([recording])))
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
    assert set(assert_one_value_per_key(log, "featurizer and consumer killed")) == expected
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
    assert set(assert_one_value_per_key(log, "broker restarted")) == expected
    assert featurizer.proc.poll() is None and consumer.proc.poll() is None
    log.close()
    assert featurizer.stop() == 0
    assert consumer.stop() == 0


def _slices(recording: Path, out: Path, seconds: tuple[float, ...]) -> list[Path]:
    """The recording's frames cut at ``seconds`` after its first frame, one file per piece."""
    lines = recording.read_bytes().splitlines()
    start: float | None = None
    files = [out / f"piece-{i}.ndjson" for i in range(len(seconds) + 1)]
    pieces: list[list[bytes]] = [[] for _ in files]
    for line in lines:
        try:
            stamp = parse_frame(line).timestamp
        except FrameError:
            continue
        start = stamp if start is None else start
        pieces[sum(stamp - start >= cut for cut in seconds)].append(line)
    for path, piece in zip(files, pieces, strict=True):
        path.write_bytes(b"\n".join(piece) + b"\n")
    return files


def test_a_stall_at_the_live_rate_gives_exactly_the_reference_vectors(
    pipeline: Pipeline, recordings: list[Path], tmp_path: Path
) -> None:
    """A featurizer frozen for longer than any wall-clock lateness would allow, while ticks keep
    coming at the live rate, then thawed: its vectors are exactly the reference, none late."""
    recording = next(r for r in recordings if "btc-eth" in r.name)
    # Warm-up at full speed (60 s of history), then 14 s at the live rate.
    head, tail, _ = _slices(recording, tmp_path, (64.0, 78.0))
    records: list[StreamRecord] = replayed(iter_ticks([head])) + replayed(iter_ticks([tail]))
    reference = reference_by_key(records)
    featurizer = pipeline.start("featurize")
    consumer = pipeline.start("consume")
    replay = pipeline.replay([head])
    assert replay.wait(60) == 0
    features = TopicReader(pipeline.broker.bootstrap_servers, pipeline.features, PARTITIONS)
    live = pipeline.replay([tail], speed="1")
    wait_for(lambda: features.read(0.2) >= 0 and len(features.messages) > 0, 30, "vectors")
    featurizer.proc.send_signal(signal.SIGSTOP)
    try:
        # Frozen until the rest of the live-rate replay is on the topic (about 10 s).
        assert live.wait(60) == 0
    finally:
        featurizer.proc.send_signal(signal.SIGCONT)
    log = PredictionLog(pipeline.broker.bootstrap_servers, pipeline.predictions, PARTITIONS)
    log.wait_for_keys(set(reference), 60, featurizer, consumer)
    wait_for(
        lambda: features.read(0.2) >= 0 and len(features.messages) >= len(reference),
        30,
        "all vectors",
    )
    assert_features_equal_reference(features, reference, "live rate with a stall")
    assert set(assert_one_value_per_key(log, "live rate with a stall")) == set(reference)
    assert featurizer.metric("volatility_late_ticks_total") == 0
    assert featurizer.metric("volatility_deadletters_total") == 0
    features.close()
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
