"""What all requests together may hold at once: bytes of request bodies.

Each request is bounded (body bytes, rows, JSON values), but without a bound across requests,
many concurrent large bodies would add up to any amount of memory. A request reserves its body's
size (declared, or the body limit when it declares none) before reading it, and waits its turn
while the budget is spent: a waiting request reads nothing, so the server's flow control leaves
its bytes in the socket.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ByteBudget:
    """A first-come first-served budget of bytes, for one event loop's coroutines."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    def take_now(self, n: int) -> bool:
        """Reserve ``n`` bytes if they are free and no one waits before us."""
        if n <= self.free and not self._waiting:
            self.free -= n
            return True
        return False

    async def take(self, n: int) -> None:
        """Reserve ``n`` (at most ``total``) bytes, waiting for earlier reservations to end."""
        if n > self.total:
            raise ValueError(f"{n} bytes exceed the whole budget of {self.total}")
        if self.take_now(n):
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, granted)
        self._waiting.append(entry)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.give(n)  # granted just before the cancellation: hand it on
            elif entry in self._waiting:
                self._waiting.remove(entry)
                self._wake()
            raise

    def give(self, n: int) -> None:
        self.free += n
        self._wake()

    def _wake(self) -> None:
        while self._waiting and self._waiting[0][0] <= self.free:
            n, granted = self._waiting.popleft()
            if granted.done():
                continue
            self.free -= n
            granted.set_result(None)
