"""The simulator's side of the protocol, seen by a bare WebSocket client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import websocket

from volatility.exchange.protocol import Frame, parse_frame, subscribe_messages
from volatility.exchange.simulator import start_simulator, synthetic_source
from volatility.ticks import Tick

from .conftest import WAIT_S, client_config, running_client


@contextmanager
def _socket(url: str) -> Iterator[websocket.WebSocket]:
    ws = websocket.create_connection(url, timeout=WAIT_S)
    try:
        yield ws
    finally:
        ws.close(timeout=1.0)


def _read(ws: websocket.WebSocket, count: int) -> list[Frame]:
    return [parse_frame(ws.recv()) for _ in range(count)]


def _first_ticks(seed: int, count: int) -> list[tuple[str, float, float, float, float]]:
    source = synthetic_source(seed)
    ticks: list[Tick] = []
    with (
        start_simulator(source, speed=None, timestamps="keep") as sim,
        _socket(sim.url) as ws,
    ):
        for message in subscribe_messages(["BTC-USD", "ETH-USD"], ["ticker"]):
            ws.send(message)
        while len(ticks) < count:
            ticks.extend(parse_frame(ws.recv()).ticks)
    return [(t.product_id, t.event_time, t.price, t.best_bid, t.best_ask) for t in ticks[:count]]


def test_same_seed_same_frames_over_the_wire() -> None:
    first = _first_ticks(21, 400)
    assert first == _first_ticks(21, 400)
    assert first != _first_ticks(22, 400)


def test_acknowledgements_sequence_numbers_and_snapshots() -> None:
    with start_simulator(synthetic_source(4), speed=None) as sim, _socket(sim.url) as ws:
        ws.send(subscribe_messages(["BTC-USD"], ["ticker"])[0])
        ack = parse_frame(ws.recv())
        assert ack.channel == "subscriptions" and ack.sequence_num == 0
        assert dict(ack.subscriptions) == {"ticker": ("BTC-USD",)}
        frames = _read(ws, 50)
        assert [f.sequence_num for f in frames] == list(range(1, 51))
        assert {t.product_id for f in frames for t in f.ticks} == {"BTC-USD"}
        ws.send(subscribe_messages(["ETH-USD"], ["ticker"])[0])
        ws.send(subscribe_messages([], ["heartbeats"])[0])
        seen: list[Frame] = []
        while not (
            any(f.channel == "heartbeats" for f in seen)
            and any(t.product_id == "ETH-USD" for f in seen for t in f.ticks)
        ):
            seen.extend(_read(ws, 1))
        acks = [f for f in seen if f.channel == "subscriptions"]
        assert dict(acks[-1].subscriptions) == {
            "heartbeats": ("heartbeats",),
            "ticker": ("BTC-USD", "ETH-USD"),
        }
        assert [f.sequence_num for f in seen] == list(range(51, 51 + len(seen)))
        ws.send(json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "gossip"}))
        ws.send("{")
        errors = 0
        while errors < 2:
            text = ws.recv()
            if '"type":"error"' in text:
                errors += 1


def test_first_ticker_frame_of_each_product_is_a_snapshot() -> None:
    with start_simulator(synthetic_source(4), speed=None) as sim, _socket(sim.url) as ws:
        for message in subscribe_messages(["BTC-USD", "ETH-USD"], ["ticker"]):
            ws.send(message)
        kinds: dict[str, list[str]] = {"BTC-USD": [], "ETH-USD": []}
        while min(len(v) for v in kinds.values()) < 3:
            raw = json.loads(ws.recv())
            if raw["channel"] == "ticker":
                event = raw["events"][0]
                kinds[event["tickers"][0]["product_id"]].append(event["type"])
        assert all(v[:3] == ["snapshot", "update", "update"] for v in kinds.values())


def test_preroll_sends_recent_history_at_once_then_paces_in_real_time() -> None:
    preroll = 30.0
    source = synthetic_source(3, ("BTC-USD",), start_time=time.time() - preroll)
    handle = start_simulator(source, speed=1.0, timestamps="keep", preroll=preroll)
    try:
        with running_client(client_config(handle.url, products=("BTC-USD",))) as (client, frames):
            started = time.monotonic()

            def span() -> float:
                times = [t.event_time for f in list(frames) for t in f.ticks]
                return max(times) - min(times) if times else 0.0

            assert client.wait_for(lambda _: span() >= 0.8 * preroll, timeout=15.0)
            # The backlog arrived far faster than real time.
            assert time.monotonic() - started < 0.5 * preroll
            ticks = [t for f in list(frames) for t in f.ticks]
            assert max(t.event_time for t in ticks) <= time.time() + 1.0
    finally:
        handle.stop()


def _until(ws: websocket.WebSocket, wanted: str, limit: int = 500) -> list[str]:
    """Frames read until one holding ``wanted`` (bounded, so a silent server fails the test)."""
    seen: list[str] = []
    while not seen or wanted not in seen[-1]:
        assert len(seen) < limit, f"no frame with {wanted!r} in {limit}"
        text = ws.recv()
        seen.append(text if isinstance(text, str) else text.decode())
    return seen


def test_unknown_products_are_left_out_and_unserved_channels_get_an_error() -> None:
    with start_simulator(synthetic_source(4), speed=None) as sim, _socket(sim.url) as ws:
        ws.send(subscribe_messages(["NOPE-USD"], ["ticker"])[0])
        ack = parse_frame(_until(ws, '"subscriptions"')[-1])
        assert dict(ack.subscriptions) == {}  # nothing to serve, and nothing searched for
        for channel in ("level2", "market_trades", "candles", "status"):
            ws.send(subscribe_messages(["BTC-USD"], [channel])[0])
            error = json.loads(_until(ws, '"type":"error"')[-1])
            assert channel in error["message"]
        # The connection still answers: a served product flows.
        ws.send(subscribe_messages(["BTC-USD", "NOPE-USD"], ["ticker"])[0])
        ack = parse_frame(_until(ws, '"subscriptions"')[-1])
        assert dict(ack.subscriptions) == {"ticker": ("BTC-USD",)}
        assert parse_frame(_until(ws, '"ticker"')[-1]).ticks[0].product_id == "BTC-USD"
        started = time.monotonic()
    assert time.monotonic() - started < 5.0  # stop() did not wait on a stuck writer


def test_frames_without_ticks_are_stamped_on_the_market_clock() -> None:
    source = synthetic_source(4)
    with (
        start_simulator(source, speed=None, timestamps="keep") as sim,
        _socket(sim.url) as ws,
    ):
        ws.send(subscribe_messages(["BTC-USD"], ["ticker"])[0])
        ws.send(subscribe_messages([], ["heartbeats"])[0])
        frames = [parse_frame(text) for text in _until(ws, '"heartbeats"')]
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps)  # one clock for every channel
    assert abs(stamps[0] - source.start_time) < 3600  # the recording's time, not the wall clock


def test_a_replay_sends_every_field_its_recording_carries() -> None:
    from volatility.exchange.simulator import replay_source

    from .conftest import SMALL_RECORDING

    recorded = [
        entry
        for line in SMALL_RECORDING.read_text().splitlines()[:40]
        for event in json.loads(line)["events"]
        for entry in event["tickers"]
    ]
    assert {len(e) for e in recorded} == {10}  # every field of this recording
    with (
        start_simulator(replay_source(SMALL_RECORDING), speed=None, timestamps="keep") as sim,
        _socket(sim.url) as ws,
    ):
        ws.send(subscribe_messages(["BTC-USD"], ["ticker"])[0])
        sent: list[object] = []
        while len(sent) < len(recorded):
            doc = json.loads(_until(ws, '"channel":"ticker"')[-1])
            sent += [entry for event in doc["events"] for entry in event["tickers"]]
    assert sent[: len(recorded)] == recorded
