"""The ingest's view of its exchange client: Prometheus counters and health.

The client keeps plain counters (reconnects, sequence gaps, malformed frames by reason...); this
adapter copies their increase into the service's metrics every few seconds, and derives liveness
from them: alive while the client makes progress (frames, or connection attempts while the feed
is down). Readiness does not follow the exchange: an outage there must not make the ingest look
broken to Kubernetes (failed rollouts, restarts); it shows in volatility_feed_connected.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING

from volatility import metrics

if TYPE_CHECKING:
    from volatility.exchange.client import ClientStats, ExchangeClient
    from volatility.runtime import Health


class FeedMonitor:
    def __init__(self, client: ExchangeClient, health: Health, interval: float = 5.0) -> None:
        self._client = client
        self._health = health
        self._interval = interval
        self._last: ClientStats | None = None

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            self.sync()
        self.sync()

    def sync(self) -> None:
        now = self._client.stats()
        last = self._last
        self._last = now
        metrics.FEED_CONNECTED.set(1 if now.connected else 0)
        if last is None:
            progressed = True
            last_disconnects: Counter[str] = Counter()
            last_malformed: Counter[str] = Counter()
            base = (0, 0, 0, 0)
        else:
            progressed = (now.frames, now.connects, now.connect_failures) != (
                last.frames,
                last.connects,
                last.connect_failures,
            )
            last_disconnects, last_malformed = last.disconnects, last.malformed
            base = (
                last.reconnects,
                last.connect_failures,
                last.sequence_gaps,
                last.sequence_missed,
            )
        if progressed:
            self._health.beat()
        for counter, value, before in zip(
            (
                metrics.RECONNECTS,
                metrics.CONNECT_FAILURES,
                metrics.SEQUENCE_GAPS,
                metrics.SEQUENCE_MISSED,
            ),
            (now.reconnects, now.connect_failures, now.sequence_gaps, now.sequence_missed),
            base,
            strict=True,
        ):
            if value > before:
                counter.inc(value - before)
        for reason, count in now.disconnects.items():
            if count > last_disconnects[reason]:
                metrics.DISCONNECTS.labels(reason).inc(count - last_disconnects[reason])
        for reason, count in now.malformed.items():
            if count > last_malformed[reason]:
                metrics.MALFORMED.labels("ingest", reason).inc(count - last_malformed[reason])
