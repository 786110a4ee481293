"""Automatic rollback to the baseline on live signals. Pure: samples in, verdict out.

A signal breaches when its value rises above its threshold; the breach ends only once the
value falls below threshold * clear_ratio (hysteresis), and missing data ends it too (a breach
is never assumed). The policy fires when a breach has lasted `window_seconds`, and only when:
the resource is Ready on a variant other than the baseline (never in the middle of a change:
a manual change always wins), no hold is in force, and the last change is at least
`cooldown_seconds` old. After it fires, the rollback is held until the spec changes, so the
operator never flips back on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from volatility.names import VariantName
from volatility_operator.resource import REASON_AUTOMATIC, Signal
from volatility_operator.spec import AutoRollback
from volatility_operator.status import Hold, Status

ROLLBACK_TARGET: VariantName = "baseline"


@dataclass
class BreachTracker:
    """When each signal's current breach started (monotonic seconds), per resource."""

    since: dict[Signal, float] = field(default_factory=dict)

    def update(
        self, policy: AutoRollback, samples: Mapping[Signal, float | None], now: float
    ) -> None:
        for signal, threshold in policy.thresholds.items():
            value = samples.get(signal)
            if value is None or value < threshold * policy.clear_ratio:
                self.since.pop(signal, None)
            elif value > threshold:
                self.since.setdefault(signal, now)
            # between the clear level and the threshold: a breach goes on, none starts

    def reset(self) -> None:
        self.since.clear()

    def longest(self, now: float) -> tuple[Signal, float] | None:
        if not self.since:
            return None
        signal = min(self.since, key=lambda s: self.since[s])
        return signal, now - self.since[signal]


@dataclass(frozen=True)
class Verdict:
    fire: bool
    reason: str


def eligible(policy: AutoRollback | None, status: Status, generation: int, now: float) -> Verdict:
    """Whether an automatic rollback may happen now at all (before looking at signals)."""
    if policy is None or not policy.enabled or not policy.thresholds:
        return Verdict(False, "automatic rollback is off")
    if status.hold is not None and status.hold.generation == generation:
        return Verdict(False, f"held on {status.hold.variant} ({status.hold.reason})")
    if status.phase != "Ready" or status.observed_generation != generation:
        return Verdict(False, "a change is in progress")
    if status.variant is None or status.variant == ROLLBACK_TARGET:
        return Verdict(False, f"already serving {ROLLBACK_TARGET}")
    last_change = max((s.at for s in status.history), default=status.change_started or 0.0)
    if status.change_started is not None:
        last_change = max(last_change, status.change_started)
    wait = policy.cooldown_seconds - (now - last_change)
    if wait > 0:
        return Verdict(False, f"cooling down for {wait:.0f}s more")
    return Verdict(True, "eligible")


def evaluate(
    policy: AutoRollback | None,
    status: Status,
    generation: int,
    tracker: BreachTracker,
    samples: Mapping[Signal, float | None],
    now: float,
    wall: float,
) -> Hold | None:
    """The hold to place (a rollback to the baseline), or None. ``now`` is monotonic time for
    the breach window, ``wall`` epoch seconds for the cooldown against recorded times."""
    gate = eligible(policy, status, generation, wall)
    if not gate.fire or policy is None:
        tracker.reset()  # a breach counts only from when a rollback could follow it
        return None
    tracker.update(policy, samples, now)
    longest = tracker.longest(now)
    if longest is None or longest[1] < policy.window_seconds:
        return None
    signal, lasted = longest
    value = samples.get(signal)
    message = (
        f"{signal}={value:g} above {policy.thresholds[signal]:g} for {lasted:.0f}s "
        f"(window {policy.window_seconds:g}s); rolled back from {status.variant} "
        f"to {ROLLBACK_TARGET}"
    )
    tracker.reset()
    return Hold(generation, ROLLBACK_TARGET, REASON_AUTOMATIC, message, "automatic")
