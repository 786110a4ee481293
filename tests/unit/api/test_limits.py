"""The budget of request-body bytes held at once: first come, first served, nothing leaked."""

from __future__ import annotations

import asyncio

import pytest

from volatility.api.limits import ByteBudget


async def _pending(task: asyncio.Task[None]) -> bool:
    for _ in range(10):  # let the task run as far as it can
        await asyncio.sleep(0)
    return not task.done()


def test_waiters_are_served_in_order_once_bytes_are_given_back() -> None:
    async def scenario() -> None:
        budget = ByteBudget(100)
        assert budget.take_now(60)
        big = asyncio.create_task(budget.take(80))
        small = asyncio.create_task(budget.take(10))
        assert await _pending(big)
        # 40 bytes are free, enough for the small one, but it queued behind the big one.
        assert await _pending(small)
        assert not budget.take_now(10)  # nor can anyone jump the queue
        budget.give(60)
        await big
        await small
        assert budget.free == 10
        budget.give(80)
        budget.give(10)
        assert budget.free == 100

    asyncio.run(scenario())


def test_a_cancelled_waiter_leaves_no_hole() -> None:
    async def scenario() -> None:
        budget = ByteBudget(100)
        assert budget.take_now(100)
        first = asyncio.create_task(budget.take(50))
        second = asyncio.create_task(budget.take(50))
        assert await _pending(first)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        budget.give(100)
        await second
        assert budget.free == 50

    asyncio.run(scenario())


def test_more_than_the_whole_budget_is_refused() -> None:
    async def scenario() -> None:
        with pytest.raises(ValueError, match="exceed the whole budget"):
            await ByteBudget(10).take(11)

    asyncio.run(scenario())
