"""A local exchange speaking the Advanced Trade WebSocket protocol, run in background threads.

Each connection gets a reader (the server's handler thread: subscribe and unsubscribe messages)
and a writer thread that sends, in due order: pending control frames (subscription
acknowledgements, injected raw frames), one ``heartbeats`` frame per second while that channel is
subscribed, and ``ticker`` frames of the subscribed products. ``sequence_num`` counts every frame
of a connection across channels, starting at 0.

Pacing is in event time: at ``speed`` N a tick whose event time is t seconds after the source's
start goes out t/N seconds after the simulator started, so every connection sees one market clock
(a late subscriber joins at the current market time, less ``preroll`` seconds of recent
history sent at once, so a client's windows fill without waiting). ``speed=None`` sends as fast
as the socket takes, each connection from the source's start. Timestamps: "now" (wall clock at
send), "shift" (event times moved so the source starts when the simulator did) or "keep" (as in
the source).

Test hooks on the handle: drop every connection (server-side close), silence the current
connections (socket stays open, nothing is sent), skip sequence numbers, inject raw frames.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from volatility.exchange.simulator.frames import (
    error_frame,
    heartbeat_frame,
    subscriptions_frame,
    ticker_frame,
)
from volatility.exchange.simulator.sources import TickSource
from volatility.ticks import Tick

log = logging.getLogger(__name__)

TimestampMode = Literal["now", "shift", "keep"]
TIMESTAMP_MODES: tuple[TimestampMode, ...] = ("now", "shift", "keep")
# The channels served. Subscribing to another one (level2, market_trades, candles, status...)
# is answered with an error frame, and products the source never produces are left out of the
# acknowledgement, as the exchange does with products it does not list.
SERVED_CHANNELS = frozenset({"ticker", "heartbeats"})
_IDLE_WAIT_S = 1.0  # longest a writer sleeps without a due frame; it is woken on any change


@dataclass(frozen=True, slots=True)
class SimulatorStats:
    connections_total: int
    connections_open: int
    frames_sent: int
    ticks_sent: int
    subscribe_messages: int


class _Clock:
    """The market clock shared by every connection."""

    def __init__(
        self,
        source: TickSource,
        speed: float | None,
        timestamps: TimestampMode,
        preroll: float = 0.0,
    ) -> None:
        self.source = source
        self.preroll = preroll
        # The market opens ``preroll`` seconds into the source: that history is already due.
        self.open_time = source.start_time + preroll
        self.speed = speed
        self.timestamps = timestamps
        self.mono0 = time.monotonic()
        self.wall0 = time.time()

    def due(self, tick: Tick) -> float:
        """Monotonic time at which a tick goes out (-inf at full speed)."""
        if self.speed is None:
            return float("-inf")
        return self.mono0 + (tick.event_time - self.open_time) / self.speed

    def market_now(self) -> float:
        if self.speed is None:
            return float("-inf")
        return self.open_time + (time.monotonic() - self.mono0) * self.speed

    def stamp(self, tick: Tick) -> float:
        if self.timestamps == "keep":
            return tick.event_time
        if self.timestamps == "shift":
            return tick.event_time + (self.wall0 - self.open_time)
        return time.time()

    def heartbeat_stamp(self, last_tick_stamp: float) -> float:
        """The timestamp of a frame without ticks (heartbeats, acknowledgements), on the ticks'
        clock (the exchange stamps every frame with its own): the market's time now, never
        before the last tick sent."""
        if self.timestamps == "now":
            return time.time()
        # At full speed the market is wherever this connection's ticks are.
        market = self.source.start_time if self.speed is None else self.market_now()
        if self.timestamps == "shift":
            market += self.wall0 - self.open_time
        return max(market, last_tick_stamp)


class _Session:
    """One client connection: subscriptions, control queue and the writer thread."""

    def __init__(self, conn: ServerConnection, sim: _Simulator) -> None:
        self.conn = conn
        self.sim = sim
        self.cond = threading.Condition()
        self.subscriptions: dict[str, list[str]] = {}
        self.outbox: deque[tuple[str, bool]] = deque()  # (text, consumes a sequence number)
        self.silent = False
        self.closed = False
        self.sequence = 0
        self.heartbeat_counter = 0
        self.writer = threading.Thread(target=self._write_loop, name="sim-writer", daemon=True)

    # -- reader side (server handler thread) -------------------------------------------------
    def serve(self) -> None:
        self.writer.start()
        try:
            for message in self.conn:
                self._on_message(message)
        except ConnectionClosed:
            pass
        finally:
            self.close_quietly()
            self.writer.join(timeout=5.0)

    def _on_message(self, message: str | bytes) -> None:
        try:
            request: Any = json.loads(message)
        except (ValueError, RecursionError):
            self.enqueue(error_frame("malformed message"), sequenced=False)
            return
        if not isinstance(request, dict) or request.get("type") not in {
            "subscribe",
            "unsubscribe",
        }:
            self.enqueue(error_frame("unknown message type"), sequenced=False)
            return
        channels = request.get("channels") or [request.get("channel")]
        products = request.get("product_ids") or []
        if (
            not isinstance(channels, list)
            or not isinstance(products, list)
            or not all(isinstance(c, str) for c in channels)
            or not all(isinstance(p, str) for p in products)
        ):
            self.enqueue(error_frame("Failed to subscribe: malformed request"), sequenced=False)
            return
        unserved = [c for c in channels if c not in SERVED_CHANNELS]
        if unserved:
            text = f"Failed to subscribe: channel {', '.join(unserved)} is not served here"
            self.enqueue(error_frame(text), sequenced=False)
            return
        known = self.sim.clock.source.products
        products = [p for p in products if p in known]
        self.sim.count_subscribe()
        with self.cond:
            for channel in channels:
                current = self.subscriptions.setdefault(channel, [])
                products_for = ["heartbeats"] if channel == "heartbeats" else products
                for product in products_for:
                    if request["type"] == "subscribe" and product not in current:
                        current.append(product)
                    elif request["type"] == "unsubscribe" and product in current:
                        current.remove(product)
                if not current:
                    del self.subscriptions[channel]
            self.outbox.append(("subscriptions", True))
            self.cond.notify_all()

    # -- hooks -------------------------------------------------------------------------------
    def enqueue(self, text: str, *, sequenced: bool) -> None:
        with self.cond:
            self.outbox.append((text, sequenced))
            self.cond.notify_all()

    def set_silent(self) -> None:
        with self.cond:
            self.silent = True
            self.cond.notify_all()

    def skip_sequence(self, count: int) -> None:
        with self.cond:
            self.sequence += count

    def close_quietly(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def drop(self) -> None:
        self.close_quietly()
        try:
            self.conn.close(1012, "service restart")
        except Exception:
            log.debug("close of a dropped connection failed", exc_info=True)

    # -- writer side ---------------------------------------------------------------------------
    def _write_loop(self) -> None:
        try:
            self._write()
        except ConnectionClosed:
            pass
        finally:
            self.close_quietly()

    def _write(self) -> None:
        clock = self.sim.clock
        ticks: Iterator[Tick] | None = None
        pending: Tick | None = None
        snapshot_done: set[str] = set()
        next_heartbeat: float | None = None
        last_stamp = -math.inf
        while True:
            with self.cond:
                while True:
                    if self.closed:
                        return
                    now = time.monotonic()
                    if self.silent:
                        self.cond.wait()
                        continue
                    if self.outbox:
                        text, sequenced = self.outbox.popleft()
                        if text == "subscriptions":
                            text = subscriptions_frame(
                                self.sequence,
                                clock.heartbeat_stamp(last_stamp),
                                self.subscriptions,
                            )
                        seq_used = sequenced
                        kind = "control"
                        break
                    wants_hb = "heartbeats" in self.subscriptions
                    if wants_hb and next_heartbeat is None:
                        next_heartbeat = now
                    if not wants_hb:
                        next_heartbeat = None
                    products = frozenset(self.subscriptions.get("ticker", ()))
                    if products and ticks is None:
                        ticks = self._open_ticks()
                    if (
                        products
                        and ticks is not None
                        and (pending is None or pending.product_id not in products)
                    ):
                        pending = next((t for t in ticks if t.product_id in products), None)
                        if pending is None:
                            ticks = iter(())  # the source is exhausted
                    tick_due = clock.due(pending) if (products and pending) else None
                    hb_due = next_heartbeat
                    candidates = [d for d in (tick_due, hb_due) if d is not None]
                    if candidates and min(candidates) <= now:
                        # A due heartbeat goes first: at full speed ticks are always due.
                        due_beat = hb_due is not None and hb_due <= now
                        kind = "heartbeat" if due_beat else "ticker"
                        seq_used = True
                        text = ""
                        break
                    timeout = min(candidates) - now if candidates else _IDLE_WAIT_S
                    self.cond.wait(min(timeout, _IDLE_WAIT_S))
                sequence = self.sequence
                if seq_used:
                    self.sequence += 1
            if kind == "heartbeat" and next_heartbeat is not None:
                text = heartbeat_frame(
                    sequence,
                    clock.heartbeat_stamp(last_stamp),
                    self.heartbeat_counter,
                    now - clock.mono0,
                )
                self.heartbeat_counter += 1
                next_heartbeat += self.sim.heartbeat_interval
                if next_heartbeat < now:  # after a silence, do not send a backlog
                    next_heartbeat = now + self.sim.heartbeat_interval
            elif kind == "ticker" and pending is not None:
                first = pending.product_id not in snapshot_done
                snapshot_done.add(pending.product_id)
                last_stamp = clock.stamp(pending)
                text = ticker_frame([pending], sequence, last_stamp, snapshot=first)
                pending = None
                self.sim.count_tick()
            self.conn.send(text)
            self.sim.count_frame()

    def _open_ticks(self) -> Iterator[Tick]:
        stream = self.sim.clock.source.open()
        clock = self.sim.clock
        # Join the market where it is now (less the preroll), not where the source began.
        since = clock.market_now() - clock.preroll
        return (t for t in stream if t.event_time >= since)


class _Simulator:
    def __init__(
        self,
        source: TickSource,
        speed: float | None,
        timestamps: TimestampMode,
        heartbeat_interval: float,
        preroll: float = 0.0,
    ) -> None:
        self.clock = _Clock(source, speed, timestamps, preroll)
        self.heartbeat_interval = heartbeat_interval
        self.lock = threading.Condition()
        self.sessions: list[_Session] = []
        self.connections_total = 0
        self.frames_sent = 0
        self.ticks_sent = 0
        self.subscribe_messages = 0

    def handler(self, conn: ServerConnection) -> None:
        session = _Session(conn, self)
        with self.lock:
            self.sessions.append(session)
            self.connections_total += 1
            self.lock.notify_all()
        try:
            session.serve()
        finally:
            with self.lock:
                self.sessions.remove(session)
                self.lock.notify_all()

    def count_frame(self) -> None:
        with self.lock:
            self.frames_sent += 1

    def count_tick(self) -> None:
        with self.lock:
            self.ticks_sent += 1

    def count_subscribe(self) -> None:
        with self.lock:
            self.subscribe_messages += 1
            self.lock.notify_all()

    def current(self) -> list[_Session]:
        with self.lock:
            return list(self.sessions)


class SimulatorHandle:
    """A running simulator: its URL, hooks for tests, and `stop()`."""

    def __init__(self, sim: _Simulator, server: Server, thread: threading.Thread) -> None:
        self._sim = sim
        self._server = server
        self._thread = thread
        host, port = server.socket.getsockname()[:2]
        self.host: str = host
        self.port: int = port
        self.url = f"ws://{host}:{port}"

    @property
    def source(self) -> TickSource:
        return self._sim.clock.source

    def stats(self) -> SimulatorStats:
        sim = self._sim
        with sim.lock:
            return SimulatorStats(
                sim.connections_total,
                len(sim.sessions),
                sim.frames_sent,
                sim.ticks_sent,
                sim.subscribe_messages,
            )

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        """Block until ``predicate(stats)`` holds (woken on connects and subscribes) or timeout."""
        deadline = time.monotonic() + timeout
        with self._sim.lock:
            while not predicate(self.stats()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._sim.lock.wait(min(remaining, 0.1))
        return True

    def drop_connections(self) -> int:
        """Close every open connection from the server side; returns how many."""
        sessions = self._sim.current()
        for session in sessions:
            session.drop()
        return len(sessions)

    def silence_connections(self) -> int:
        """Stop sending on the open connections but keep them open; new connections talk."""
        sessions = self._sim.current()
        for session in sessions:
            session.set_silent()
        return len(sessions)

    def skip_sequence(self, count: int) -> int:
        """Make the next frame of every open connection skip ``count`` sequence numbers."""
        sessions = self._sim.current()
        for session in sessions:
            session.skip_sequence(count)
        return len(sessions)

    def inject_raw(self, text: str) -> int:
        """Send ``text`` verbatim on every open connection (no sequence number consumed)."""
        sessions = self._sim.current()
        for session in sessions:
            session.enqueue(text, sequenced=False)
        return len(sessions)

    def stop(self, timeout: float = 5.0) -> None:
        self._server.shutdown()
        for session in self._sim.current():
            session.drop()
        self._thread.join(timeout)

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start_simulator(
    source: TickSource,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    speed: float | None = 1.0,
    timestamps: TimestampMode = "now",
    heartbeat_interval: float = 1.0,
    preroll: float = 0.0,
) -> SimulatorHandle:
    """Start serving in a background thread; port 0 picks a free port (see ``handle.url``)."""
    if speed is not None and speed <= 0:
        raise ValueError("speed must be positive (None for full speed)")
    if timestamps not in TIMESTAMP_MODES:
        raise ValueError(f"timestamps must be one of {TIMESTAMP_MODES}")
    if preroll < 0:
        raise ValueError("preroll must not be negative")
    sim = _Simulator(source, speed, timestamps, heartbeat_interval, preroll)
    # A client that does not answer the closing handshake must not hold up a stop (SIGTERM).
    server = serve(sim.handler, host, port, compression=None, max_queue=64, close_timeout=1.0)
    thread = threading.Thread(target=server.serve_forever, name="simulator", daemon=True)
    thread.start()
    log.info("simulator on ws://%s:%d serving %s", host, port, source.name)
    return SimulatorHandle(sim, server, thread)
