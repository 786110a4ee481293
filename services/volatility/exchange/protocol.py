"""Parsing of Coinbase Advanced Trade WebSocket frames, and the subscribe messages a client sends.

One raw frame (text or bytes) becomes a `Frame`: channel, sequence number, exchange timestamp
and, for ticker frames, the validated `Tick`s. Anything malformed raises `FrameError` whose
``reason`` is one of `FRAME_REASONS`, so callers can count bad input by reason and carry on.

A ticker frame may carry several ticker entries. A bad entry does not spoil its siblings: it is
skipped and its reason is listed in `Frame.rejected`, and the frame keeps the good ticks.
"""

from __future__ import annotations

import calendar
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

import orjson

from volatility.ticks import Tick

# Every reason a frame or a ticker entry can be rejected for; metrics label values come from here.
NOT_JSON: Final = "not_json"
NOT_OBJECT: Final = "not_object"
UNKNOWN_CHANNEL: Final = "unknown_channel"
MISSING_FIELD: Final = "missing_field"
NON_NUMERIC: Final = "non_numeric"
CROSSED_BOOK: Final = "crossed_book"
NON_POSITIVE_PRICE: Final = "non_positive_price"
BAD_TIMESTAMP: Final = "bad_timestamp"
ERROR_FRAME: Final = "error_frame"
FRAME_REASONS: Final[tuple[str, ...]] = (
    NOT_JSON,
    NOT_OBJECT,
    UNKNOWN_CHANNEL,
    MISSING_FIELD,
    NON_NUMERIC,
    CROSSED_BOOK,
    NON_POSITIVE_PRICE,
    BAD_TIMESTAMP,
    ERROR_FRAME,
)

TICKER_CHANNELS: Final = frozenset({"ticker", "ticker_batch"})
_isfinite = math.isfinite

# Channels the exchange answers on; subscribing to "level2" yields "l2_data" frames.
KNOWN_CHANNELS: Final = frozenset(
    {
        "subscriptions",
        "heartbeats",
        "ticker",
        "ticker_batch",
        "market_trades",
        "l2_data",
        "candles",
        "status",
        "user",
        "futures_balance_summary",
    }
)


class FrameError(ValueError):
    """A frame that cannot be used; ``reason`` is one of `FRAME_REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Frame:
    """One parsed exchange frame. Only ticker, subscriptions and heartbeats carry payload here."""

    channel: str
    sequence_num: int | None
    timestamp: float
    ticks: tuple[Tick, ...] = ()
    rejected: tuple[str, ...] = ()  # reasons of ticker entries that were skipped
    subscriptions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    heartbeat_counter: int | None = None


@lru_cache(maxsize=4096)
def _minute_epoch(prefix: str) -> float:
    """Epoch seconds of a ``YYYY-MM-DDTHH:MM`` prefix; cached since frames share their minute."""
    if len(prefix) != 16 or prefix[4] != "-" or prefix[7] != "-" or prefix[10] != "T":
        raise FrameError(BAD_TIMESTAMP, prefix)
    if prefix[13] != ":":
        raise FrameError(BAD_TIMESTAMP, prefix)
    parts = (prefix[0:4], prefix[5:7], prefix[8:10], prefix[11:13], prefix[14:16])
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise FrameError(BAD_TIMESTAMP, prefix)
    year, month, day, hour, minute = (int(p) for p in parts)
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise FrameError(BAD_TIMESTAMP, prefix)
    if hour > 23 or minute > 59:
        raise FrameError(BAD_TIMESTAMP, prefix)
    return float(calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0)))


# SS[.fffffffff]Z after the minute; float() alone would also take "1e1", "4_2" or " 7".
_SECONDS = re.compile(r"[0-9]{2}(?:\.[0-9]{1,9})?Z")


def parse_timestamp(text: str) -> float:
    """``2026-08-09T21:05:48.228568804Z`` (0 to 9 fractional digits) -> epoch seconds, UTC."""
    if type(text) is not str or len(text) < 20 or text[16] != ":":
        raise FrameError(BAD_TIMESTAMP, repr(text)[:60])
    if _SECONDS.fullmatch(text, 17) is None:
        raise FrameError(BAD_TIMESTAMP, text[:60])
    value = float(text[17:-1])
    if value >= 61.0:  # 60 only for a leap second
        raise FrameError(BAD_TIMESTAMP, text[:60])
    return _minute_epoch(text[:16]) + value


def _optional_number(entry: Mapping[str, Any], key: str) -> float | None:
    raw = entry.get(key)
    if raw is None:
        return None
    # Numbers arrive as strings; a bool is an int subclass and never a price.
    if type(raw) is not str and (isinstance(raw, bool) or not isinstance(raw, int | float)):
        raise FrameError(NON_NUMERIC, key)
    try:
        value = float(raw)
    except ValueError:
        raise FrameError(NON_NUMERIC, key) from None
    if not _isfinite(value):
        raise FrameError(NON_NUMERIC, key)
    return value


def _number(entry: Mapping[str, Any], key: str) -> float:
    value = _optional_number(entry, key)
    if value is None:
        raise FrameError(MISSING_FIELD, key)
    return value


def parse_ticker_entry(entry: Any, event_time: float, sequence_num: int | None) -> Tick:
    """Validate one element of ``events[].tickers``."""
    if not isinstance(entry, dict):
        raise FrameError(NOT_OBJECT, "ticker entry")
    product_id = entry.get("product_id")
    if not isinstance(product_id, str) or not product_id:
        raise FrameError(MISSING_FIELD, "product_id")
    price = _number(entry, "price")
    best_bid = _number(entry, "best_bid")
    best_ask = _number(entry, "best_ask")
    volume = _optional_number(entry, "volume_24_h")
    if price <= 0.0 or best_bid <= 0.0 or best_ask <= 0.0:
        raise FrameError(NON_POSITIVE_PRICE, product_id)
    if best_bid > best_ask:
        raise FrameError(CROSSED_BOOK, f"{product_id} {best_bid} > {best_ask}")
    return Tick(product_id, event_time, price, best_bid, best_ask, sequence_num, volume)


def _decode(raw: str | bytes | bytearray) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:  # the stdlib also reads NaN/Infinity, so those frames fail as non_numeric, not here
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise FrameError(NOT_JSON, str(exc)[:80]) from None


def _sequence(obj: Mapping[str, Any]) -> int | None:
    seq = obj.get("sequence_num")
    if seq is None:
        return None
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise FrameError(NON_NUMERIC, "sequence_num")
    return seq


def parse_object(obj: Any) -> Frame:
    """Validate an already decoded frame (see `parse_frame`)."""
    if not isinstance(obj, dict):
        raise FrameError(NOT_OBJECT, type(obj).__name__)
    channel = obj.get("channel")
    if channel is None:
        if obj.get("type") == "error":
            raise FrameError(ERROR_FRAME, str(obj.get("message", ""))[:200])
        raise FrameError(MISSING_FIELD, "channel")
    if channel not in KNOWN_CHANNELS:
        raise FrameError(UNKNOWN_CHANNEL, str(channel)[:40])
    stamp = obj.get("timestamp")
    if stamp is None:
        raise FrameError(MISSING_FIELD, "timestamp")
    timestamp = parse_timestamp(stamp)
    sequence_num = _sequence(obj)
    events = obj.get("events")
    if not isinstance(events, list):
        raise FrameError(MISSING_FIELD, "events")

    if channel in TICKER_CHANNELS:
        ticks: list[Tick] = []
        rejected: list[str] = []
        for event in events:
            tickers = event.get("tickers") if isinstance(event, dict) else None
            if not isinstance(tickers, list):
                raise FrameError(MISSING_FIELD, "tickers")
            for entry in tickers:
                try:
                    ticks.append(parse_ticker_entry(entry, timestamp, sequence_num))
                except FrameError as exc:
                    rejected.append(exc.reason)
        return Frame(channel, sequence_num, timestamp, tuple(ticks), tuple(rejected))

    if channel == "subscriptions":
        subscribed: dict[str, tuple[str, ...]] = {}
        for event in events:
            subs = event.get("subscriptions") if isinstance(event, dict) else None
            if not isinstance(subs, dict):
                raise FrameError(MISSING_FIELD, "subscriptions")
            for name, products in subs.items():
                if not isinstance(products, list):
                    raise FrameError(NOT_OBJECT, f"subscriptions.{name}")
                subscribed[str(name)] = tuple(str(p) for p in products)
        return Frame(channel, sequence_num, timestamp, subscriptions=subscribed)

    if channel == "heartbeats":
        counter: int | None = None
        for event in events:
            value = event.get("heartbeat_counter") if isinstance(event, dict) else None
            if isinstance(value, int) and not isinstance(value, bool):
                counter = value
        return Frame(channel, sequence_num, timestamp, heartbeat_counter=counter)

    return Frame(channel, sequence_num, timestamp)


def parse_frame(raw: str | bytes | bytearray) -> Frame:
    """Parse one raw WebSocket frame; raises `FrameError` with a reason from `FRAME_REASONS`."""
    return parse_object(_decode(raw))


def subscribe_messages(
    products: Iterable[str], channels: Iterable[str], *, unsubscribe: bool = False
) -> list[str]:
    """One JSON message per channel, the form the exchange expects (one channel per message)."""
    product_ids = list(products)
    kind = "unsubscribe" if unsubscribe else "subscribe"
    return [
        json.dumps(
            {"type": kind, "product_ids": product_ids, "channel": channel}, separators=(",", ":")
        )
        for channel in channels
    ]
