from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from volatility.exchange.protocol import (
    FRAME_REASONS,
    FrameError,
    parse_frame,
    parse_timestamp,
    subscribe_messages,
)


def _ticker(entry: Mapping[str, object], **frame: object) -> str:
    body: dict[str, object] = {
        "channel": "ticker",
        "timestamp": "2026-04-04T21:13:43.528894Z",
        "sequence_num": 2,
        "events": [{"type": "update", "tickers": [entry]}],
    }
    body.update(frame)
    return json.dumps(body)


GOOD = {"product_id": "BTC-USD", "price": "100.5", "best_bid": "100.4", "best_ask": "100.5"}


def test_every_frame_of_the_protocol_sample_parses(data_dir: Path) -> None:
    channels: Counter[str] = Counter()
    ticks = 0
    for line in (data_dir / "protocol" / "advanced_trade_received.ndjson").open("rb"):
        frame = parse_frame(line)
        channels[frame.channel] += 1
        ticks += len(frame.ticks)
        assert frame.rejected == ()
    assert channels == {
        "l2_data": 775,
        "ticker": 160,
        "market_trades": 59,
        "heartbeats": 25,
        "candles": 6,
        "subscriptions": 5,
    }
    assert ticks == 160


def test_sample_payloads_are_typed(data_dir: Path) -> None:
    lines = (data_dir / "protocol" / "advanced_trade_received.ndjson").read_text().splitlines()
    frames = [parse_frame(line) for line in lines]
    acks = [f for f in frames if f.channel == "subscriptions"]
    assert acks[-1].subscriptions["ticker"] == ("BTC-USD", "ETH-USD")
    assert acks[-1].subscriptions["heartbeats"] == ("heartbeats",)
    beats = [f.heartbeat_counter or 0 for f in frames if f.channel == "heartbeats"]
    assert beats[0] == 41691 and beats == sorted(beats)
    tick = next(t for f in frames for t in f.ticks)
    assert (tick.product_id, tick.price, tick.best_bid, tick.best_ask) == (
        "BTC-USD",
        65086.18,
        65083.66,
        65083.67,
    )
    assert tick.volume_24h == 2867.54532609
    assert tick.sequence_num == 6


@pytest.mark.parametrize(
    "text",
    [
        "2026-08-09T21:05:48.228568804Z",
        "2026-04-04T21:13:43.528894Z",
        "2024-02-29T00:00:00Z",
        "1999-12-31T23:59:59.5Z",
    ],
)
def test_timestamps_match_datetime(text: str) -> None:
    whole, _, frac = text[:-1].partition(".")
    expected = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    expected += float("0." + frac) if frac else 0.0
    assert parse_timestamp(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "2026-08-09 21:05:48.228Z",
        "2026-08-09T21:05:48.228",
        "2026-02-30T21:05:48Z",
        "2026-13-09T21:05:48Z",
        "2026-08-09T24:05:48Z",
        "2026-08-09T21:05:4e1Z",
        "2026-08-09T21:05:48.Z",
        "2026-08-09T21:05:48.1234567890Z",
        "2026-08-09T21:05:99Z",
        "",
    ],
)
def test_bad_timestamps_are_rejected(text: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_timestamp(text)
    assert caught.value.reason == "bad_timestamp"


MALFORMED = [
    ("not_json", "{not json"),
    ("not_json", b"\xff\xfe{"),
    ("not_object", "[1, 2]"),
    ("not_object", '"ticker"'),
    ("unknown_channel", '{"channel":"gossip","timestamp":"2026-04-04T21:13:43Z","events":[]}'),
    ("missing_field", '{"timestamp":"2026-04-04T21:13:43Z","events":[]}'),
    ("missing_field", '{"channel":"ticker","events":[]}'),
    ("missing_field", '{"channel":"ticker","timestamp":"2026-04-04T21:13:43Z"}'),
    ("missing_field", '{"channel":"ticker","timestamp":"2026-04-04T21:13:43Z","events":[{}]}'),
    ("non_numeric", _ticker(GOOD, sequence_num="7")),
    ("bad_timestamp", _ticker(GOOD, timestamp="yesterday")),
    ("error_frame", '{"type":"error","message":"Failed to subscribe"}'),
]


@pytest.mark.parametrize(("reason", "raw"), MALFORMED)
def test_malformed_frames_raise_with_their_reason(reason: str, raw: str | bytes) -> None:
    with pytest.raises(FrameError) as caught:
        parse_frame(raw)
    assert caught.value.reason == reason
    assert reason in FRAME_REASONS


BAD_ENTRIES = [
    ("missing_field", {k: v for k, v in GOOD.items() if k != "best_bid"}),
    ("missing_field", {k: v for k, v in GOOD.items() if k != "product_id"}),
    ("non_numeric", {**GOOD, "price": "abc"}),
    ("non_numeric", {**GOOD, "best_ask": "NaN"}),
    ("non_numeric", {**GOOD, "volume_24_h": "lots"}),
    ("non_numeric", {**GOOD, "price": True}),
    ("crossed_book", {**GOOD, "best_bid": "100.6"}),
    ("non_positive_price", {**GOOD, "price": "0"}),
    ("non_positive_price", {**GOOD, "best_bid": "-1"}),
    ("not_object", "BTC-USD"),
]


@pytest.mark.parametrize(("reason", "entry"), BAD_ENTRIES)
def test_a_bad_ticker_entry_is_skipped_and_its_siblings_kept(reason: str, entry: object) -> None:
    raw = json.dumps(
        {
            "channel": "ticker",
            "timestamp": "2026-04-04T21:13:43.5Z",
            "sequence_num": 9,
            "events": [{"type": "update", "tickers": [entry, {**GOOD, "product_id": "ETH-USD"}]}],
        }
    )
    frame = parse_frame(raw)
    assert frame.rejected == (reason,)
    assert [t.product_id for t in frame.ticks] == ["ETH-USD"]


def test_only_four_ticker_fields_are_required() -> None:
    frame = parse_frame(_ticker(GOOD))
    (tick,) = frame.ticks
    assert tick.volume_24h is None
    assert tick.event_time == parse_timestamp("2026-04-04T21:13:43.528894Z")
    assert tick.best_bid == 100.4 and tick.best_ask == 100.5
    locked = parse_frame(_ticker({**GOOD, "best_bid": "100.5"}))
    assert len(locked.ticks) == 1  # bid == ask is a locked book, not a crossed one


def test_subscribe_messages_match_what_the_sample_client_sent(data_dir: Path) -> None:
    sent = (data_dir / "protocol" / "advanced_trade_sent.ndjson").read_text().splitlines()
    wanted = [json.loads(line) for line in sent if '"ticker"' in line or "heartbeats" in line]
    built = subscribe_messages(["BTC-USD", "ETH-USD"], ["ticker", "heartbeats"])
    assert [json.loads(m) for m in built] == wanted
    off = json.loads(subscribe_messages(["BTC-USD"], ["ticker"], unsubscribe=True)[0])
    assert off["type"] == "unsubscribe"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


_SETTINGS = settings(
    max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@_SETTINGS
@given(
    st.fixed_dictionaries(
        {"channel": st.sampled_from(["ticker", "heartbeats", "subscriptions", "x"])},
        optional={
            "timestamp": st.sampled_from(["2026-04-04T21:13:43Z", "bad"]) | json_values,
            "sequence_num": json_values,
            "events": json_values,
        },
    )
)
def test_arbitrary_objects_either_parse_or_raise_frame_error(obj: dict[str, object]) -> None:
    try:
        frame = parse_frame(json.dumps(obj))
    except FrameError as exc:
        assert exc.reason in FRAME_REASONS
    else:
        assert frame.channel == obj["channel"]


@_SETTINGS
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_arbitrary_bytes_either_parse_or_raise_frame_error(raw: bytes | str) -> None:
    try:
        parse_frame(raw)
    except FrameError as exc:
        assert exc.reason in FRAME_REASONS
