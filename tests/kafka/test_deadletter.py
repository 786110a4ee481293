"""Poison messages on the real broker go to the dead-letter topic; the stream goes on."""

from __future__ import annotations

from pathlib import Path

from tests.kafka.pipeline import (
    PARTITIONS,
    Pipeline,
    PredictionLog,
    TopicReader,
    expected_keys,
    wait_for,
)
from volatility.exchange.recordings import iter_ticks
from volatility.messages import encode_tick, encode_watermark
from volatility.ticks import Watermark

POISON_TICKS = {
    b"{not json": "not_json",
    b'{"product_id":"BTC-USD","event_time":1.0,"price":10.0,"best_bid":11.0,"best_ask":10.0}': (
        "crossed_book"
    ),
    b'{"product_id":"BTC-USD","event_time":1.0,"price":NaN,"best_bid":9.0,"best_ask":10.0}': (
        "non_finite"
    ),
}
POISON_FEATURES = {
    b'{"product_id":"BTC-USD","event_time":1.0,"spec":"999","features":{}}': (
        "feature_spec_mismatch"
    ),
    b"[1, 2, 3]": "not_object",
}


def test_poison_in_each_topic_is_dead_lettered_with_its_reason_and_the_stream_goes_on(
    pipeline: Pipeline,
    recordings: list[Path],
) -> None:
    recording = next(r for r in recordings if "btc-eth" in r.name)
    ticks = list(iter_ticks([recording]))[:1500]
    expected = expected_keys(ticks)
    producer = pipeline.producer()
    # Features poison first, in every partition: every valid vector comes after it.
    for p in range(PARTITIONS):
        for value in POISON_FEATURES:
            producer.produce(pipeline.features, value, partition=p)
    half = len(ticks) // 2
    for tick in ticks[:half]:
        producer.produce(pipeline.ticks, encode_tick(tick), tick.product_id)
    # Valid documents the featurizer must set aside, each for its reason, without a stall.
    now = ticks[half - 1]
    earlier = next(
        t
        for t in reversed(ticks[: half - 1])
        if t.product_id == now.product_id and now.event_time - t.event_time > 2
    )
    stage_poison = {
        encode_tick(now._replace(product_id="DOGE-USD")): "unknown_product",
        encode_tick(now._replace(event_time=now.event_time * 1000)): "clock_skew",
        encode_tick(now, ingest_time=now.event_time - 3600): "future_time",
        encode_watermark(Watermark(now.product_id, now.event_time + 1), 1.0): "future_time",
        encode_tick(earlier._replace(price=earlier.price + 0.01)): "late",
    }
    for value in POISON_TICKS:
        producer.produce(pipeline.ticks, value, "BTC-USD")
    for value in stage_poison:
        producer.produce(pipeline.ticks, value, now.product_id)
    for tick in ticks[half:]:
        producer.produce(pipeline.ticks, encode_tick(tick), tick.product_id)
    assert producer.flush(30) == 0

    featurizer = pipeline.start("featurize")
    consumer = pipeline.start("consume")
    log = PredictionLog(pipeline.broker.bootstrap_servers, pipeline.predictions, PARTITIONS)
    log.wait_for_keys(expected, 90, featurizer, consumer)

    dead = TopicReader(pipeline.broker.bootstrap_servers, pipeline.deadletter, 1)
    wanted = len(POISON_TICKS) + len(stage_poison) + PARTITIONS * len(POISON_FEATURES)
    wait_for(lambda: dead.read() >= 0 and len(dead.messages) >= wanted, 30, "dead letters")
    by_value = dict(dead.messages)
    assert len(dead.messages) == wanted
    for value, reason in {**POISON_TICKS, **stage_poison}.items():
        headers = by_value[value]
        assert headers["reason"] == reason.encode()
        assert headers["source_topic"] == pipeline.ticks.encode()
        assert headers["service"] == b"featurizer"
        assert headers["detail"]
    for value, reason in POISON_FEATURES.items():
        headers = by_value[value]
        assert headers["reason"] == reason.encode()
        assert headers["source_topic"] == pipeline.features.encode()
        assert headers["service"] == b"consumer"
    for reason in POISON_TICKS.values():
        assert featurizer.metric(f'volatility_deadletters_total{{reason="{reason}"') == 1
    for reason in set(stage_poison.values()):
        count = featurizer.metric(f'volatility_deadletters_total{{reason="{reason}"')
        assert count == list(stage_poison.values()).count(reason), reason
    for reason in POISON_FEATURES.values():
        count = consumer.metric(f'volatility_deadletters_total{{reason="{reason}"')
        assert count == PARTITIONS
    log.close()
    dead.close()
    assert featurizer.stop() == 0
    assert consumer.stop() == 0
