"""WebSocket client for the Advanced Trade feed (or anything speaking it, like the simulator).

`ExchangeClient.frames(stop)` connects, subscribes, and yields parsed frames until ``stop`` is
set. Around that it keeps the feed alive: it reconnects with exponential backoff and full jitter
and subscribes again, drops a connection that has been silent for ``stale_after`` seconds, counts
sequence gaps per connection and malformed frames by reason. Every blocking call has a timeout
(``poll_interval`` for reads), so setting ``stop`` ends it within about that long (or within
``connect_timeout`` while a connection attempt is under way).

The ``on_raw`` hook sees every data frame verbatim with its receive time, before parsing, so a
capture keeps even the frames that fail to parse.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace

import websocket

from volatility.exchange.backoff import Backoff
from volatility.exchange.protocol import Frame, FrameError, parse_frame, subscribe_messages
from volatility.exchange.sequence import SequenceTracker
from volatility.names import COINBASE_WS_URL, DEFAULT_PRODUCTS

log = logging.getLogger(__name__)

RawHook = Callable[[str, float], None]

# Why a connection ended; label values of the disconnect counter.
DISCONNECT_CLOSED = "closed"  # the server closed it
DISCONNECT_ERROR = "error"  # socket or protocol error
DISCONNECT_STALE = "stale"  # the watchdog gave up waiting for a frame


@dataclass(frozen=True, slots=True)
class ClientConfig:
    url: str = COINBASE_WS_URL
    products: tuple[str, ...] = DEFAULT_PRODUCTS
    channels: tuple[str, ...] = ("ticker", "heartbeats")
    connect_timeout: float = 10.0
    poll_interval: float = 0.25  # longest single blocking read; bounds how late a stop is seen
    stale_after: float = 10.0  # no frame for this long -> reconnect (heartbeats come every 1 s)
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_multiplier: float = 2.0
    seed: int | None = None  # for the backoff jitter


@dataclass(slots=True)
class ClientStats:
    """Plain counters; a service exports them as metrics. Copies come from `stats()`."""

    frames: int = 0
    ticks: int = 0
    connects: int = 0  # successful connections, the first included
    reconnects: int = 0  # successful connections after the first
    connect_failures: int = 0
    disconnects: Counter[str] = field(default_factory=Counter)  # by DISCONNECT_* reason
    sequence_gaps: int = 0
    sequence_missed: int = 0  # numbers skipped by those gaps
    sequence_backwards: int = 0
    malformed: Counter[str] = field(default_factory=Counter)  # frames and ticker entries
    frames_by_channel: Counter[str] = field(default_factory=Counter)
    subscriptions: dict[str, tuple[str, ...]] = field(default_factory=dict)  # last acknowledged
    connected: bool = False
    last_frame_at: float | None = None  # wall-clock receive time of the last frame
    last_event_time: float | None = None  # exchange timestamp of the last parsed frame

    def copy(self) -> ClientStats:
        return replace(
            self,
            disconnects=Counter(self.disconnects),
            malformed=Counter(self.malformed),
            frames_by_channel=Counter(self.frames_by_channel),
            subscriptions=dict(self.subscriptions),
        )


class ExchangeClient:
    def __init__(self, config: ClientConfig, on_raw: RawHook | None = None) -> None:
        if config.stale_after <= 0 or config.poll_interval <= 0:
            raise ValueError("stale_after and poll_interval must be positive")
        self.config = config
        self.on_raw = on_raw
        self._stats = ClientStats()
        self._changed = threading.Condition()
        self._backoff = Backoff(
            config.backoff_initial, config.backoff_max, config.backoff_multiplier, config.seed
        )

    # -- observation -----------------------------------------------------------------------------
    def stats(self) -> ClientStats:
        with self._changed:
            return self._stats.copy()

    def wait_for(self, predicate: Callable[[ClientStats], bool], timeout: float) -> bool:
        """Block until ``predicate(stats)`` holds or ``timeout`` passes; woken on every change."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self._stats):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def _update(self, change: Callable[[ClientStats], None]) -> None:
        with self._changed:
            change(self._stats)
            self._changed.notify_all()

    # -- running ---------------------------------------------------------------------------------
    def run(self, stop: threading.Event, on_frame: Callable[[Frame], None]) -> None:
        """Forward every parsed frame to ``on_frame`` until ``stop`` is set."""
        for frame in self.frames(stop):
            on_frame(frame)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Parsed frames of all subscribed channels, across reconnects, until ``stop`` is set."""
        while not stop.is_set():
            ws = self._connect(stop)
            if ws is None:
                return
            reason = DISCONNECT_ERROR
            try:
                reason = yield from self._read(ws, stop)
            finally:
                self._disconnect(ws, reason)
            if stop.is_set():
                return
            if stop.wait(self._backoff.next_delay()):
                return

    def _connect(self, stop: threading.Event) -> websocket.WebSocket | None:
        cfg = self.config
        while not stop.is_set():
            try:
                ws = websocket.create_connection(cfg.url, timeout=cfg.connect_timeout)
                for message in subscribe_messages(cfg.products, cfg.channels):
                    ws.send(message)
            except (websocket.WebSocketException, OSError) as exc:
                log.warning("connect to %s failed: %s", cfg.url, exc)
                self._update(lambda s: setattr(s, "connect_failures", s.connect_failures + 1))
                if stop.wait(self._backoff.next_delay()):
                    return None
                continue

            def connected(s: ClientStats) -> None:
                if s.connects:
                    s.reconnects += 1
                s.connects += 1
                s.connected = True

            self._update(connected)
            log.info("connected to %s, subscribed to %s", cfg.url, ",".join(cfg.channels))
            return ws
        return None

    def _disconnect(self, ws: websocket.WebSocket, reason: str) -> None:
        try:
            if reason == DISCONNECT_STALE:
                _abort(ws)  # a stalled peer may never answer a close handshake
            else:
                ws.close(timeout=1.0)
        except (websocket.WebSocketException, OSError):
            _abort(ws)

        def disconnected(s: ClientStats) -> None:
            s.connected = False
            s.disconnects[reason] += 1

        self._update(disconnected)

    def _read(self, ws: websocket.WebSocket, stop: threading.Event) -> Generator[Frame, None, str]:
        """Frames of one connection; the generator's return value is why it ended."""
        cfg = self.config
        tracker = SequenceTracker()  # numbering is per connection
        last_frame = time.monotonic()
        received_any = False
        while not stop.is_set():
            remaining = cfg.stale_after - (time.monotonic() - last_frame)
            if remaining <= 0:
                log.warning("no frame for %.1f s, reconnecting", cfg.stale_after)
                return DISCONNECT_STALE
            ws.settimeout(min(cfg.poll_interval, remaining))
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError) as exc:
                log.warning("connection lost: %s", exc)
                return DISCONNECT_ERROR
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                log.warning("server closed the connection")
                return DISCONNECT_CLOSED
            if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                continue
            received_at = time.time()
            last_frame = time.monotonic()
            if not received_any:
                received_any = True
                self._backoff.reset()  # this connection worked; start backing off afresh
            if self.on_raw is not None:
                self.on_raw(data.decode("utf-8", errors="replace"), received_at)
            frame = self._account(data, received_at, tracker)
            if frame is not None:
                yield frame
        return DISCONNECT_CLOSED

    def _account(self, data: bytes, received_at: float, tracker: SequenceTracker) -> Frame | None:
        try:
            frame = parse_frame(data)
        except FrameError as exc:
            reason = exc.reason
            if reason == "error_frame":
                log.warning("exchange error: %s", exc.detail)

            def bad(s: ClientStats) -> None:
                s.frames += 1
                s.last_frame_at = received_at
                s.malformed[reason] += 1

            self._update(bad)
            return None
        backwards_before = tracker.backwards
        skipped = tracker.observe(frame.sequence_num)
        went_back = tracker.backwards - backwards_before

        def good(s: ClientStats) -> None:
            s.frames += 1
            s.ticks += len(frame.ticks)
            s.last_frame_at = received_at
            s.last_event_time = frame.timestamp
            s.frames_by_channel[frame.channel] += 1
            for reason in frame.rejected:
                s.malformed[reason] += 1
            if skipped:
                s.sequence_gaps += 1
                s.sequence_missed += skipped
            s.sequence_backwards += went_back
            if frame.channel == "subscriptions":
                s.subscriptions = dict(frame.subscriptions)

        self._update(good)
        return frame


def _abort(ws: websocket.WebSocket) -> None:
    """Close the socket without a close handshake."""
    ws.shutdown()  # type: ignore[no-untyped-call]
