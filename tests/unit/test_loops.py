"""Service loops on the in-process bus: the ingest's publisher, the featurizer and the consumer
loops, dead letters with their headers, and a stop that ends them."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import REGISTRY

from tests.stream_reference import reference_vectors
from volatility.bus.memory import MemoryBus
from volatility.exchange.protocol import Frame
from volatility.exchange.simulator.synthetic import synthetic_ticks
from volatility.features import FeatureVector
from volatility.loops import TickPublisher, run_consumer, run_featurizer
from volatility.messages import (
    decode_features,
    decode_prediction,
    decode_record,
    encode_features,
    encode_tick,
)
from volatility.names import TOPIC_DEADLETTER, TOPIC_FEATURES, TOPIC_PREDICTIONS, TOPIC_TICKS
from volatility.runtime import Health
from volatility.scoring.model import Model
from volatility.settings import DEFAULT_MODEL_DIR
from volatility.stages import FeaturizeStage, ScoreStage
from volatility.ticks import Tick, Watermark

T0 = 1_775_000_000.0
WAIT_S = 30.0


def drain(bus: MemoryBus, topic: str, until: Callable[[list[Any]], bool]) -> list[Any]:
    """Messages of ``topic`` (read by a group of its own) until ``until`` holds."""
    sub = bus.subscribe(topic, f"reader-{topic}")
    got: list[Any] = []
    deadline = time.monotonic() + WAIT_S
    while not until(got):
        assert time.monotonic() < deadline, f"{topic}: only {len(got)} messages"
        got += sub.poll(1000, 0.1)
    return got


@contextmanager
def running(target: Callable[..., None], *args: Any, **kwargs: Any) -> Iterator[Health]:
    stop, health = threading.Event(), Health()
    thread = threading.Thread(target=target, args=(*args, stop, health), kwargs=kwargs)
    thread.start()
    try:
        ready = threading.Event()
        while not health.ready:
            assert thread.is_alive(), "the loop ended before it was ready"
            ready.wait(0.01)
        yield health
    finally:
        stop.set()
        thread.join(WAIT_S)
        assert not thread.is_alive(), "the loop did not stop"
    assert not health.ready


def test_memory_bus_fans_out_per_group_in_order() -> None:
    bus = MemoryBus()
    a, b = bus.subscribe("t", "g1"), bus.subscribe("t", "g2")
    bus.publish_many("t", [("k", b"1"), ("k", b"2")])
    bus.publish("t", None, b"3", headers=[("h", b"v")])
    for sub in (a, b):
        got = sub.poll(10, 1.0)
        assert [m.value for m in got] == [b"1", b"2", b"3"]
        assert [m.offset for m in got] == [0, 1, 2]
        assert got[2].headers == (("h", b"v"),)
    assert a.poll(10, 0.01) == []
    assert bus.flush() == 0 and bus.delivery_errors == 0


def _frame(channel: str, stamp: float, ticks: tuple[Tick, ...] = ()) -> Frame:
    return Frame(channel, None, stamp, ticks)


def test_ingest_publishes_watermarks_of_the_exchange_clock_and_sets_skewed_frames_aside() -> None:
    bus = MemoryBus()
    ticks_sub = bus.subscribe(TOPIC_TICKS, "f")
    dead_sub = bus.subscribe(TOPIC_DEADLETTER, "d")
    publisher = TickPublisher(bus, products=("BTC-USD", "ETH-USD"), max_skew=60.0)
    # A quarter second into the current second: the heartbeat falls in the previous second and
    # both ticks in this one, whenever the test runs (a tenth of an arbitrary `now` would cross
    # into a third second).
    now = math.floor(time.time()) + 0.25
    btc = Tick("BTC-USD", now, 10.0, 9.0, 11.0)
    publisher.on_frame(_frame("heartbeats", now - 0.5))
    publisher.on_frame(_frame("ticker", now, (btc,)))
    publisher.on_frame(_frame("ticker", now + 0.1, (btc._replace(event_time=now + 0.1),)))
    stamped_ms = btc._replace(event_time=now * 1000)
    publisher.on_frame(_frame("ticker", now * 1000, (stamped_ms,)))
    records = [decode_record(m.value)[0] for m in ticks_sub.poll(100, 1.0)]
    seconds = sorted({math.floor(now - 0.5), math.floor(now)})
    marks = [r for r in records if type(r) is Watermark]
    # One watermark per product each time the clock enters a new second, before the ticks.
    assert [(m.product_id, math.floor(m.event_time)) for m in marks] == [
        (p, s) for s in seconds for p in ("BTC-USD", "ETH-USD")
    ]
    assert [r for r in records if type(r) is Tick] == [btc, btc._replace(event_time=now + 0.1)]
    (dead,) = dead_sub.poll(10, 1.0)
    assert dict(dead.headers)["reason"] == b"clock_skew"
    assert dict(dead.headers)["service"] == b"ingest"


def test_featurizer_loop_publishes_the_reference_and_dead_letters_poison() -> None:
    bus = MemoryBus()
    ticks = []
    for k in synthetic_ticks(5, ("BTC-USD",), start_time=T0):
        if k.event_time - T0 > 120:
            break
        ticks.append(k)
    bus.subscribe(TOPIC_FEATURES, "reader-" + TOPIC_FEATURES)
    bus.subscribe(TOPIC_DEADLETTER, "reader-" + TOPIC_DEADLETTER)
    want = reference_vectors(ticks)
    stage = FeaturizeStage(products=("BTC-USD",))
    with running(run_featurizer, bus, stage=stage, poll_timeout=0.05):
        half = len(ticks) // 2
        bus.publish_many(TOPIC_TICKS, [(t.product_id, encode_tick(t)) for t in ticks[:half]])
        bus.publish(TOPIC_TICKS, "BTC-USD", b"{broken")
        bus.publish(TOPIC_TICKS, "SOL-USD", encode_tick(ticks[0]._replace(product_id="SOL-USD")))
        bus.publish_many(TOPIC_TICKS, [(t.product_id, encode_tick(t)) for t in ticks[half:]])
        features = drain(bus, TOPIC_FEATURES, lambda got: len(got) >= len(want))
        dead = drain(bus, TOPIC_DEADLETTER, lambda got: len(got) >= 2)
    assert [decode_features(m.value).event_time for m in features] == [v.event_time for v in want]
    assert [dict(m.headers)["reason"] for m in dead] == [b"not_json", b"unknown_product"]
    assert {dict(m.headers)["source_topic"] for m in dead} == {TOPIC_TICKS.encode()}


def test_consumer_loop_dead_letters_vectors_of_products_it_does_not_serve() -> None:
    bus = MemoryBus()
    bus.subscribe(TOPIC_PREDICTIONS, "reader-" + TOPIC_PREDICTIONS)
    bus.subscribe(TOPIC_DEADLETTER, "reader-" + TOPIC_DEADLETTER)
    stage = ScoreStage(Model.load(DEFAULT_MODEL_DIR, "baseline"))
    products = ("BTC-USD", "XRP-FAKE", "ETH-USD", "XRP-FAKE")
    vectors = [
        FeatureVector(p, T0 + i, tuple(0.5 for _ in range(23))) for i, p in enumerate(products)
    ]
    with running(run_consumer, bus, stage, poll_timeout=0.05, products={"BTC-USD", "ETH-USD"}):
        bus.publish_many(TOPIC_FEATURES, [(v.product_id, encode_features(v)) for v in vectors])
        predictions = drain(bus, TOPIC_PREDICTIONS, lambda got: len(got) >= 2)
        dead = drain(bus, TOPIC_DEADLETTER, lambda got: len(got) >= 2)
    scored = [decode_prediction(m.value) for m in predictions]
    assert [(p.product_id, p.event_time) for p in scored] == [("BTC-USD", T0), ("ETH-USD", T0 + 2)]
    assert [dict(m.headers)["reason"] for m in dead] == [b"unknown_product"] * 2
    assert [decode_features(m.value).event_time for m in dead] == [T0 + 1, T0 + 3]
    assert (
        REGISTRY.get_sample_value(
            "volatility_predictions_total", {"product": "XRP-FAKE", "model_variant": "baseline"}
        )
        is None
    )


def test_consumer_loop_scores_and_dead_letters_what_it_cannot_read() -> None:
    bus = MemoryBus()
    bus.subscribe(TOPIC_PREDICTIONS, "reader-" + TOPIC_PREDICTIONS)
    bus.subscribe(TOPIC_DEADLETTER, "reader-" + TOPIC_DEADLETTER)
    stage = ScoreStage(Model.load(DEFAULT_MODEL_DIR, "baseline"))
    vec = FeatureVector("BTC-USD", T0, tuple(0.5 for _ in range(23)))
    with running(run_consumer, bus, stage, poll_timeout=0.05):
        bus.publish(TOPIC_FEATURES, "BTC-USD", encode_features(vec, T0 - 0.01))
        bus.publish(TOPIC_FEATURES, "BTC-USD", b'{"spec":"0"}')
        predictions = drain(bus, TOPIC_PREDICTIONS, lambda got: len(got) >= 1)
        dead = drain(bus, TOPIC_DEADLETTER, lambda got: len(got) >= 1)
    prediction = decode_prediction(predictions[0].value)
    assert (prediction.product_id, prediction.event_time) == ("BTC-USD", T0)
    assert prediction.trigger_time == T0 - 0.01
    assert dict(dead[0].headers)["reason"] == b"feature_spec_mismatch"
