"""Automatic rollback: breach window, hysteresis, cooldown, manual wins, no flapping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from tests.unit.operator.factories import both, spec
from volatility_operator.autorollback import BreachTracker, eligible, evaluate
from volatility_operator.rollout import decide
from volatility_operator.spec import AutoRollback
from volatility_operator.status import Status, parse_status

T0 = 1_800_000_000.0
POLICY = AutoRollback(
    enabled=True,
    thresholds={"apiLatencyP95Seconds": 0.2, "errorRatio": 0.05},
    window_seconds=60,
    cooldown_seconds=120,
    clear_ratio=0.5,
)


def ready_on_ml(at: float = T0) -> Status:
    """Ready on ml since ``at`` (a manual switch from baseline)."""
    base = parse_status(
        decide(spec("baseline"), 1, Status(), both("baseline"), at - 5).status.to_dict()
    )
    to_ml = decide(spec("ml", auto=POLICY), 2, base, both("baseline"), at - 4).status
    return parse_status(decide(spec("ml", auto=POLICY), 2, to_ml, both("ml"), at).status.to_dict())


def run(
    samples: Sequence[Mapping[str, float | None]],
    *,
    status: Status | None = None,
    start: float = T0 + 200,
    every: float = 10,
    tracker: BreachTracker | None = None,
) -> list[bool]:
    """Feed one sample every ``every`` seconds; whether each one fired."""
    status = status or ready_on_ml()
    tracker = tracker or BreachTracker()
    fired = []
    for i, sample in enumerate(samples):
        now = start + i * every
        hold = evaluate(POLICY, status, 2, tracker, sample, now, now)  # type: ignore[arg-type]
        fired.append(hold is not None)
    return fired


def test_fires_once_a_breach_has_lasted_the_window() -> None:
    high = {"apiLatencyP95Seconds": 0.5, "errorRatio": 0.0}
    # Breach starts at the first sample; 60 s later (the 7th sample) the window is full.
    assert run([high] * 7) == [False] * 6 + [True]


def test_the_hold_names_the_signal_and_targets_baseline() -> None:
    status = ready_on_ml()
    tracker = BreachTracker()
    high = {"errorRatio": 0.3}
    hold = None
    for i in range(8):
        now = T0 + 200 + i * 10
        hold = hold or evaluate(POLICY, status, 2, tracker, high, now, now)  # type: ignore[arg-type]
    assert hold is not None
    assert hold.variant == "baseline"
    assert hold.trigger == "automatic"
    assert hold.reason == "AutomaticRollback"
    assert "errorRatio=0.3 above 0.05" in hold.message


def test_does_not_fire_without_a_breach_or_on_a_short_one() -> None:
    calm = {"apiLatencyP95Seconds": 0.05, "errorRatio": 0.001}
    high = {"apiLatencyP95Seconds": 0.5, "errorRatio": 0.0}
    assert not any(run([calm] * 20))
    assert not any(run([high] * 5 + [calm] + [high] * 5))


def test_hysteresis_a_breach_goes_on_between_clear_level_and_threshold() -> None:
    high = {"apiLatencyP95Seconds": 0.5}
    band = {"apiLatencyP95Seconds": 0.15}  # below 0.2, above 0.2 * 0.5
    assert run([high, band, band, band, band, band, band]) == [False] * 6 + [True]
    # ...but a value in the band never starts one.
    assert not any(run([band] * 20))


def test_missing_data_ends_a_breach() -> None:
    high = {"apiLatencyP95Seconds": 0.5}
    gap: dict[str, float | None] = {"apiLatencyP95Seconds": None}
    assert not any(run([high] * 5 + [gap] + [high] * 5))


def test_cooldown_after_a_change_blocks_then_allows() -> None:
    status = ready_on_ml(at=T0)
    assert not eligible(POLICY, status, 2, T0 + 60).fire
    assert "cooling down" in eligible(POLICY, status, 2, T0 + 60).reason
    assert eligible(POLICY, status, 2, T0 + 121).fire
    high = {"apiLatencyP95Seconds": 0.5}
    # Samples inside the cooldown do not count towards the window.
    fired = run([high] * 20, status=status, start=T0 + 10)
    # The cooldown ends at +120 s (sample 11); the breach counts from there: 60 s later.
    assert fired.index(True) == 17


def test_a_change_in_progress_wins_over_signals() -> None:
    base = parse_status(
        decide(spec("baseline"), 1, Status(), both("baseline"), T0).status.to_dict()
    )
    progressing = decide(spec("ml", auto=POLICY), 2, base, both("baseline"), T0 + 1).status
    assert progressing.phase == "Progressing"
    verdict = eligible(POLICY, progressing, 2, T0 + 10_000)
    assert not verdict.fire and verdict.reason == "a change is in progress"


def test_no_flapping_once_rolled_back_and_a_manual_change_wins() -> None:
    status = ready_on_ml()
    tracker = BreachTracker()
    high = {"apiLatencyP95Seconds": 0.5}
    hold = None
    now = T0 + 200
    while hold is None:
        now += 10
        hold = evaluate(POLICY, status, 2, tracker, high, now, now)  # type: ignore[arg-type]
    rolling_back = decide(spec("ml", auto=POLICY), 2, replace(status, hold=hold), both("ml"), now)
    assert rolling_back.patch == ("rel-api", "rel-consumer")
    assert rolling_back.variant == "baseline"
    held = parse_status(rolling_back.status.to_dict())
    done = decide(spec("ml", auto=POLICY), 2, held, both("baseline"), now + 5)
    assert done.status.phase == "RolledBack"
    assert done.status.history[-1].trigger == "automatic"
    assert done.status.history[-1].reason == "AutomaticRollback"
    rolled = parse_status(done.status.to_dict())
    # Signals calm down or stay high: the operator does not go back to ml on its own.
    for sample in ({"apiLatencyP95Seconds": 0.01}, high):
        for i in range(30):
            t = now + 10 + i * 10
            assert evaluate(POLICY, rolled, 2, tracker, sample, t, t) is None  # type: ignore[arg-type]
        again = decide(spec("ml", auto=POLICY), 2, rolled, both("baseline"), now + 400)
        assert again.patch == () and again.status.phase == "RolledBack"
    # A person re-applies ml with a changed spec: a new generation, the hold is gone.
    manual = decide(spec("ml", auto=POLICY, deadline=90), 3, rolled, both("baseline"), now + 500)
    assert manual.status.hold is None
    assert manual.patch == ("rel-api", "rel-consumer")


def test_off_or_on_baseline_never_fires() -> None:
    off = AutoRollback(enabled=False, thresholds={"errorRatio": 0.01})
    assert not eligible(off, ready_on_ml(), 2, T0 + 10_000).fire
    on_baseline = parse_status(
        decide(spec("baseline"), 1, Status(), both("baseline"), T0).status.to_dict()
    )
    assert not eligible(POLICY, on_baseline, 1, T0 + 10_000).fire
