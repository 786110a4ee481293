"""The tick: one top-of-book observation of one product at one exchange event time."""

from __future__ import annotations

from typing import NamedTuple

#: How far ahead of its stream (or its ingest time) a record may be before it is set aside.
DEFAULT_MAX_SKEW_SECONDS = 300.0


class Tick(NamedTuple):
    """A validated ticker update.

    ``event_time`` is the exchange's timestamp in seconds since the Unix epoch (UTC); all windows
    are in event time so that replaying a recording gives exactly what live streaming gave.
    A tuple rather than a frozen dataclass: one is created per tick on every hot path, and a
    tuple is several times cheaper to build.
    """

    product_id: str
    event_time: float
    price: float
    best_bid: float
    best_ask: float
    sequence_num: int | None = None
    volume_24h: float | None = None

    @property
    def mid(self) -> float:
        return 0.5 * (self.best_bid + self.best_ask)

    @property
    def spread_bps(self) -> float:
        mid = self.mid
        return (self.best_ask - self.best_bid) / mid * 1e4


class Watermark(NamedTuple):
    """A promise on the ticks topic: no tick of ``product_id`` before ``event_time`` follows.

    The ingest derives it from the exchange's own clock (every frame carries the exchange's
    timestamp, heartbeats one per second even when nothing trades), so a quiet product's windows
    close on data, never on a reader's wall clock.
    """

    product_id: str
    event_time: float


#: One record of the ticks topic.
StreamRecord = Tick | Watermark
