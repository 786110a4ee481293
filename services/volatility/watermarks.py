"""Watermarks from the exchange's clock: the ingest's side of the lateness contract.

The exchange clock is the latest timestamp of the frames received, in order (ticker frames and
heartbeats, one per second even when nothing trades). Each time ``clock - lag`` enters a new
second, one watermark per product goes out, before the ticks of the frame that moved the clock:
"every tick of this product stamped before this time has been published". ``lag`` allows an
exchange that stamps frames slightly out of order; with an exchange that stamps in order (0, the
default) no tick is ever late.

Replays derive the same records from the ticks' own times, so the ticks topic always carries
them, and the featurizer's output is a function of that topic alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

from volatility.ticks import StreamRecord, Tick, Watermark


class ExchangeClock:
    def __init__(self, products: Sequence[str] = (), lag: float = 0.0) -> None:
        self.products = list(dict.fromkeys(products))
        self._known = set(self.products)
        self.lag = lag
        self.time = -math.inf
        self._marked = -math.inf  # the second of the last watermarks given out

    def learn(self, product_id: str) -> None:
        """Give ``product_id`` watermarks from now on (replays learn products from ticks)."""
        if product_id not in self._known:
            self._known.add(product_id)
            self.products.append(product_id)

    def observe(self, timestamp: float) -> list[Watermark]:
        """The clock read ``timestamp``: the watermarks that are now due (usually none)."""
        if timestamp > self.time:
            self.time = timestamp
        mark = self.time - self.lag
        second = math.floor(mark)
        if second <= self._marked:
            return []
        self._marked = second
        return [Watermark(p, mark) for p in self.products]

    def stream(self, ticks: Iterable[Tick]) -> Iterator[StreamRecord]:
        """``ticks`` (in event-time order) with the watermarks their times imply, as a replay
        publishes them."""
        for tick in ticks:
            self.learn(tick.product_id)
            yield from self.observe(tick.event_time)
            yield tick
