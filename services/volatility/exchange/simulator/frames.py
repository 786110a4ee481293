"""The frames the simulated exchange sends, rendered in the Advanced Trade wire format."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence

from volatility.ticks import Tick

_SEPARATORS = (",", ":")


def format_timestamp(epoch: float) -> str:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (microseconds, as the recordings carry)."""
    micros = round(epoch * 1e6)
    seconds, frac = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:06d}Z"


def _number(value: float) -> str:
    # repr is the shortest text that reads back as the same float, so replays round-trip exactly.
    return repr(float(value))


def ticker_frame(
    ticks: Sequence[Tick], sequence_num: int, timestamp: float, *, snapshot: bool = False
) -> str:
    tickers: list[object] = []
    for tick in ticks:
        recorded = getattr(tick, "fields", None)
        if recorded:  # a replayed tick: every field its recording carried, as recorded
            tickers.append(recorded)
            continue
        entry = {
            "type": "ticker",
            "product_id": tick.product_id,
            "price": _number(tick.price),
            "best_bid": _number(tick.best_bid),
            "best_ask": _number(tick.best_ask),
        }
        if tick.volume_24h is not None:
            entry["volume_24_h"] = _number(tick.volume_24h)
        tickers.append(entry)
    frame = {
        "channel": "ticker",
        "client_id": "",
        "timestamp": format_timestamp(timestamp),
        "sequence_num": sequence_num,
        "events": [{"type": "snapshot" if snapshot else "update", "tickers": tickers}],
    }
    return json.dumps(frame, separators=_SEPARATORS)


def heartbeat_frame(sequence_num: int, timestamp: float, counter: int, uptime: float) -> str:
    whole = math.floor(timestamp)
    nanos = round((timestamp - whole) * 1e9)
    current = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole))
    frame = {
        "channel": "heartbeats",
        "client_id": "",
        "timestamp": format_timestamp(timestamp),
        "sequence_num": sequence_num,
        "events": [
            {
                "current_time": f"{current}.{nanos:09d} +0000 UTC m=+{uptime:.9f}",
                "heartbeat_counter": counter,
            }
        ],
    }
    return json.dumps(frame, separators=_SEPARATORS)


def subscriptions_frame(
    sequence_num: int, timestamp: float, subscriptions: Mapping[str, Sequence[str]]
) -> str:
    frame = {
        "channel": "subscriptions",
        "client_id": "",
        "timestamp": format_timestamp(timestamp),
        "sequence_num": sequence_num,
        "events": [{"subscriptions": {k: list(v) for k, v in sorted(subscriptions.items())}}],
    }
    return json.dumps(frame, separators=_SEPARATORS)


def error_frame(message: str) -> str:
    return json.dumps({"type": "error", "message": message}, separators=_SEPARATORS)
