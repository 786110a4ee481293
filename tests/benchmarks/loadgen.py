"""A small HTTP/1.1 load generator on raw asyncio streams (keep-alive, no client library).

General-purpose clients spend more CPU per request than the server under test, which would make
the client the bottleneck on a small machine; this one writes pre-built request bytes and reads
only the status line, the Content-Length and the body.

Fixed-rate runs are open-loop: request i is due at ``start + i / rate`` whatever happened to the
previous ones, and its latency is counted from when it was due (so a stalled server is not
hidden by the client waiting for it), as well as from when it was actually sent; how late the
client sent is reported too, so that a lagging client is told apart from a slow server.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import cast

import numpy as np

_HEADER_END = b"\r\n\r\n"
_LENGTH = b"\r\ncontent-length:"


def build_request(
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> bytes:
    fields = {"content-type": "application/json", **(headers or {})}
    extra = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\n{extra}content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight.

    A protocol rather than streams: the response is parsed in ``data_received`` and its arrival
    time taken there, without the extra task wake-ups of ``readuntil`` and ``readexactly``.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, float]] | None = None
        self.lost: Exception | None = None

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        _, protocol = await asyncio.get_running_loop().create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a TCP connection's

    def data_received(self, data: bytes) -> None:
        done = time.perf_counter()
        self.buffer += data
        end = self.buffer.find(_HEADER_END)
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[: end + 2]).lower()
        at = head.find(_LENGTH)
        if at < 0:
            self._fail(ConnectionError("response without content-length"))
            return
        length = int(head[at + len(_LENGTH) : head.index(b"\r\n", at + 2)])
        if len(self.buffer) < end + len(_HEADER_END) + length:
            return
        del self.buffer[: end + len(_HEADER_END) + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((int(head[9:12]), done))

    def _fail(self, exc: Exception) -> None:
        self.lost = exc
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.waiter = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("connection closed"))

    async def exchange(self, request: bytes) -> tuple[int, float]:
        """Send one request; its HTTP status and when the last byte of the answer arrived."""
        if self.lost is not None or self.transport is None:
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Outcome:
    """Latencies in seconds: from the due time (``due``) and from the actual send (``sent``)."""

    elapsed: float = 0.0
    due: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)
    # How late the client sent each request (fixed rate): its own scheduling lag, not the server's.
    lag: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0

    def record(self, status: int, due: float, sent: float, done: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.due.append(done - due)
        self.sent.append(done - sent)
        self.lag.append(sent - due)

    def merge(self, other: Outcome) -> None:
        """Add another run's figures (a slice of the same scenario)."""
        self.elapsed += other.elapsed
        self.due += other.due
        self.sent += other.sent
        self.lag += other.lag
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        self.failures += other.failures

    @property
    def completed(self) -> int:
        return len(self.sent)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    values = np.asarray(samples) * 1000.0
    p50, p90, p99, p999 = np.percentile(values, [50, 90, 99, 99.9])
    return {
        "p50": round(float(p50), 3),
        "p90": round(float(p90), 3),
        "p99": round(float(p99), 3),
        "p99.9": round(float(p999), 3),
        "max": round(float(values.max()), 3),
        "mean": round(float(values.mean()), 3),
    }


async def _pool(host: str, port: int, size: int) -> list[Connection]:
    return list(await asyncio.gather(*(Connection.open(host, port) for _ in range(size))))


async def fixed_rate(
    host: str, port: int, request: bytes, rate: float, duration: float, connections: int
) -> Outcome:
    """Open-loop: ``rate`` requests per second for ``duration`` seconds over a connection pool."""
    pool = await _pool(host, port, connections)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in pool:
        idle.put_nowait(conn)
    outcome = Outcome()
    pending: set[asyncio.Task[None]] = set()

    async def fire(due: float) -> None:
        conn = await idle.get()
        sent = time.perf_counter()
        try:
            status, done = await conn.exchange(request)
        except (OSError, ValueError):
            outcome.failures += 1
            conn.close()
            idle.put_nowait(await Connection.open(host, port))
            return
        outcome.record(status, due, sent, done)
        idle.put_nowait(conn)

    total = int(rate * duration)
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0.002:
            await asyncio.sleep(wait - 0.001)
        # The loop's timers have millisecond resolution: yield until due for the last stretch.
        while time.perf_counter() < due:
            await asyncio.sleep(0)
        task = asyncio.create_task(fire(due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
    outcome.elapsed = time.perf_counter() - start
    for conn in pool:
        conn.close()
    return outcome


async def saturate(
    host: str, port: int, request: bytes, duration: float, connections: int
) -> Outcome:
    """Closed-loop: every connection sends its next request as soon as the previous answers."""
    pool = await _pool(host, port, connections)
    outcome = Outcome()
    stop_at = time.perf_counter() + duration

    async def run(conn: Connection) -> None:
        while (now := time.perf_counter()) < stop_at:
            try:
                status, done = await conn.exchange(request)
            except (OSError, ValueError):
                outcome.failures += 1
                conn.close()
                conn = await Connection.open(host, port)
                continue
            outcome.record(status, now, now, done)
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(run(c) for c in pool))
    outcome.elapsed = time.perf_counter() - start
    return outcome
