"""One asyncio task per ModelVariant, woken by its watch events.

kopf's daemons and timers would do this too, but they make kopf put a finalizer on every
resource: a ModelVariant deleted while the operator is down (e.g. `helm uninstall`, which
removes both at once) would then hang in deletion. These plain tasks need no finalizer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

LoopFactory = Callable[[str], Coroutine[Any, Any, None]]


class Loops:
    def __init__(self, factory: LoopFactory) -> None:
        self._factory = factory
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}

    def wake(self, name: str) -> None:
        """Start the resource's loop if it is not running, else make it look now."""
        self._wake.setdefault(name, asyncio.Event()).set()
        task = self._tasks.get(name)
        if task is None or task.done():
            self._tasks[name] = asyncio.create_task(self._factory(name), name=f"mv/{name}")

    def clear(self, name: str) -> None:
        self._wake.setdefault(name, asyncio.Event()).clear()

    async def wait(self, name: str, timeout: float) -> None:
        """Until woken or ``timeout`` seconds (the loop's next look) have passed."""
        event = self._wake.setdefault(name, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    def stop(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        self._wake.pop(name, None)
        if task is not None:
            task.cancel()

    async def stop_all(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def problem(self) -> str | None:
        """A loop that ended on its own (it never should): the probe reports it."""
        dead = sorted(n for n, t in self._tasks.items() if t.done())
        return f"reconciliation loops ended: {', '.join(dead)}" if dead else None
