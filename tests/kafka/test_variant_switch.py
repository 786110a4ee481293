"""A model switch as the chart's rolling update performs it loses no prediction.

The operator switches the consumer by rolling its Deployment (``maxSurge: 100%``,
``maxUnavailable: 0``): a consumer on the new variant joins the group while the old one still
serves, then the old one gets SIGTERM, finishes its batch, flushes, commits and leaves. Here the
same happens to real processes on the real broker while a recording streams through: every
vector the recording implies is predicted, copies of a prediction by one variant are
byte-identical, and once the old consumer has left, only the new variant predicts.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from tests.kafka.pipeline import PARTITIONS, Key, Pipeline, PredictionLog, expected_keys, wait_for
from tests.stream_reference import replayed
from volatility.exchange.recordings import iter_ticks
from volatility.messages import decode_prediction

REPLAY_SPEED = "400"


def _high_watermarks(pipeline: Pipeline) -> dict[int, int]:
    consumer = Consumer(
        {"bootstrap.servers": pipeline.broker.bootstrap_servers, "group.id": "marks"}
    )
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(pipeline.predictions, p), 10)[1]
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()


def _read_from(pipeline: Pipeline, offsets: dict[int, int]) -> list[bytes]:
    """The predictions topic's messages from ``offsets`` to its current end."""
    consumer = Consumer(
        {"bootstrap.servers": pipeline.broker.bootstrap_servers, "group.id": "after-switch"}
    )
    ends = _high_watermarks(pipeline)
    consumer.assign([TopicPartition(pipeline.predictions, p, o) for p, o in offsets.items()])
    out: list[bytes] = []
    want = sum(ends[p] - o for p, o in offsets.items())
    try:
        while len(out) < want:
            batch = consumer.consume(10_000, 10)
            assert batch, f"read {len(out)} of {want} messages"
            out.extend(m.value() or b"" for m in batch if m.error() is None)
    finally:
        consumer.close()
    return out


def test_a_rolling_switch_from_baseline_to_ml_predicts_every_vector(
    pipeline: Pipeline, recordings: list[Path]
) -> None:
    recording = max((r for r in recordings if "btc-eth" in r.name), key=lambda r: r.stat().st_size)
    expected = expected_keys(replayed(iter_ticks([recording])))
    featurizer = pipeline.start("featurize")
    old = pipeline.start("consume", MODEL_VARIANT="baseline")
    log = PredictionLog(pipeline.broker.bootstrap_servers, pipeline.predictions, PARTITIONS)
    replay = pipeline.replay([recording], speed=REPLAY_SPEED)

    def predicted_at_least(n: int) -> bool:
        log.read(0.2)
        return len(log.messages) >= n

    wait_for(lambda: predicted_at_least(len(expected) // 3), 90, "first predictions", featurizer)
    new = pipeline.start("consume", MODEL_VARIANT="ml")  # the surge pod joins the group
    assert old.stop() == 0  # the old pod's SIGTERM: batch in hand, flush, commit, leave
    left_at = _high_watermarks(pipeline)  # everything the old consumer wrote is below these
    _, err = replay.communicate(timeout=120)
    assert replay.returncode == 0, err
    log.wait_for_keys(expected, 120, featurizer, new)

    by_variant: dict[tuple[Key, str], set[bytes]] = defaultdict(set)
    for value, _ in log.messages:
        p = decode_prediction(value)
        by_variant[(p.product_id, p.event_time), p.variant].add(value)
    different = [k for k, copies in by_variant.items() if len(copies) > 1]
    assert not different, f"copies by one variant differ: {different[:5]}"
    assert {k for k, _ in by_variant} == expected
    counts = {v: sum(1 for _, var in by_variant if var == v) for v in ("baseline", "ml")}
    assert counts["baseline"] > 0 and counts["ml"] > 0, counts
    after = [decode_prediction(v).variant for v in _read_from(pipeline, left_at)]
    assert after and set(after) == {"ml"}, "the old variant predicted after its consumer left"
    print(f"\n[rolling switch] {len(expected)} vectors, keys predicted by variant {counts}")
    log.close()
    assert featurizer.stop() == 0
    assert new.stop() == 0
