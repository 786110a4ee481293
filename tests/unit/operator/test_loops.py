"""One loop per resource: started by its first event, woken by the next, ended by deletion;
a loop that dies is reported (the liveness probe fails on it)."""

from __future__ import annotations

import asyncio

from volatility_operator.loops import Loops


def test_wake_starts_one_loop_and_makes_it_look_again() -> None:
    async def scenario() -> tuple[list[str], str | None]:
        looks: list[str] = []
        woken = asyncio.Event()
        loops: Loops

        async def loop(name: str) -> None:
            while True:
                loops.clear(name)
                looks.append(name)
                woken.set()
                await loops.wait(name, 3600)  # only a wake makes it look again

        loops = Loops(loop)
        loops.wake("a")
        await asyncio.wait_for(woken.wait(), 5)
        woken.clear()
        loops.wake("a")  # the same loop, not a second one
        await asyncio.wait_for(woken.wait(), 5)
        problem = loops.problem()
        await loops.stop_all()
        return looks, problem

    looks, problem = asyncio.run(scenario())
    assert looks == ["a", "a"]
    assert problem is None


def test_a_loop_that_ended_is_reported_and_stop_forgets_it() -> None:
    async def scenario() -> tuple[str | None, str | None]:
        async def crash(name: str) -> None:
            raise RuntimeError("bug")

        loops = Loops(crash)
        loops.wake("b")
        for _ in range(100):  # yield to the event loop until the task has run to its end
            if loops.problem() is not None:
                break
            await asyncio.sleep(0)
        dead = loops.problem()
        loops.stop("b")
        return dead, loops.problem()

    dead, after = asyncio.run(scenario())
    assert dead == "reconciliation loops ended: b"
    assert after is None
