"""Automatic rollback against a real Prometheus (Debian's package) scraping the API's metrics.

The exporter is the API's own `ApiMetrics`, fed with requests at 50/s whose error ratio the
test sets; Prometheus scrapes it every second; the operator's queries and policy read it back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.infra.prometheus import Prometheus, SignalExporter, provision
from tests.unit.operator.factories import both, spec
from volatility_operator import prometheus
from volatility_operator.autorollback import BreachTracker, evaluate
from volatility_operator.resource import Signal
from volatility_operator.rollout import decide
from volatility_operator.spec import AutoRollback
from volatility_operator.status import Hold, Status, parse_status

POLICY = AutoRollback(
    enabled=True,
    thresholds={"errorRatio": 0.05},
    window_seconds=10,
    cooldown_seconds=10,
    clear_ratio=0.5,
)
EXPRS: dict[Signal, str] = {"errorRatio": prometheus.queries(window="5s")["errorRatio"]}


@pytest.fixture(scope="module")
def signals() -> Iterator[tuple[Prometheus, SignalExporter]]:
    exporter = SignalExporter()
    try:
        with Prometheus(provision(), [f"127.0.0.1:{exporter.port}"]) as server:
            yield server, exporter
    finally:
        exporter.close()


def ready_on_ml() -> Status:
    """Ready on ml since long before the cooldown."""
    t = time.time() - 3600
    base = parse_status(decide(spec("baseline"), 1, Status(), both("baseline"), t).status.to_dict())
    to_ml = decide(spec("ml", auto=POLICY), 2, base, both("baseline"), t + 1).status
    return parse_status(
        decide(spec("ml", auto=POLICY), 2, to_ml, both("ml"), t + 2).status.to_dict()
    )


def watch(
    server: Prometheus, status: Status, seconds: float, tracker: BreachTracker
) -> tuple[Hold | None, list[float | None]]:
    """Sample once a second (the operator's cadence, shortened) for up to ``seconds``."""
    seen: list[float | None] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples = prometheus.sample(server.url, EXPRS)
        seen.append(samples["errorRatio"])
        hold = evaluate(POLICY, status, 2, tracker, samples, time.monotonic(), time.time())
        if hold is not None:
            return hold, seen
        time.sleep(1)  # the sampling period
    return None, seen


def settle(server: Prometheus, exporter: SignalExporter, ratio: float) -> None:
    """Until Prometheus reports the error ratio the exporter now produces."""
    exporter.error_ratio = ratio
    deadline = time.monotonic() + 30
    while True:
        value = prometheus.sample(server.url, EXPRS)["errorRatio"]
        if value is not None and abs(value - ratio) < 0.02:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus reports {value}, not {ratio}:\n{server.log_tail()}")
        time.sleep(0.5)  # poll against the deadline


def test_no_rollback_without_a_breach(signals: tuple[Prometheus, SignalExporter]) -> None:
    server, exporter = signals
    settle(server, exporter, 0.0)
    hold, seen = watch(server, ready_on_ml(), POLICY.window_seconds + 5, BreachTracker())
    assert hold is None
    assert seen and all(v is not None and v < 0.01 for v in seen), seen  # data, and calm


def test_a_breach_held_for_the_window_rolls_back_once_and_does_not_flap(
    signals: tuple[Prometheus, SignalExporter],
) -> None:
    server, exporter = signals
    settle(server, exporter, 0.2)
    tracker = BreachTracker()
    start = time.monotonic()
    hold, seen = watch(server, ready_on_ml(), 40, tracker)
    assert hold is not None, seen
    assert time.monotonic() - start >= POLICY.window_seconds
    assert hold.variant == "baseline" and hold.reason == "AutomaticRollback"
    assert "errorRatio=0.2" in hold.message
    # The rollback completes; the breach goes on, then the signal recovers: no second action.
    status = ready_on_ml()
    rolling = decide(
        spec("ml", auto=POLICY), 2, replace(status, hold=hold), both("ml"), time.time()
    )
    done = decide(
        spec("ml", auto=POLICY),
        2,
        parse_status(rolling.status.to_dict()),
        both("baseline"),
        time.time(),
    )
    rolled = parse_status(done.status.to_dict())
    assert rolled.phase == "RolledBack"
    again, _ = watch(server, rolled, POLICY.window_seconds + 3, tracker)
    assert again is None
    settle(server, exporter, 0.0)
    again, _ = watch(server, rolled, 3, tracker)
    assert again is None
