"""What to do next, given the spec, the recorded status and the observed workloads. Pure.

One step of a level-based reconciliation: the operator calls `decide` whenever something may
have changed (the resource, a timer) and carries out the returned `Decision`. Deciding twice on
the same inputs gives the same answer, so re-applying a spec changes nothing.

The states: a change starts when the variant to serve differs from the change last started
(status.target); it is Progressing until every governed pod serves it, then Ready. A change
that misses its progress deadline is reverted to the variant served before it, under a hold
(Degraded) that lasts until the spec changes again. An automatic rollback (see `autorollback`)
is a hold too (RolledBack).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from volatility.names import VariantName
from volatility_operator.observed import WorkloadView, common_template_variant, progress
from volatility_operator.resource import (
    REASON_AUTOMATIC,
    REASON_DEADLINE,
    REASON_MANUAL,
    REASON_READY,
    REASON_SWITCHING,
    ConditionType,
    Phase,
)
from volatility_operator.spec import Spec
from volatility_operator.status import Condition, Hold, Status, Switch


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    status: Status
    # Workloads whose pod template must be set to `variant` (empty: nothing to patch).
    patch: tuple[str, ...]
    variant: VariantName
    events: tuple[Event, ...]
    # True while a change is in flight: the caller looks again soon.
    busy: bool


def _conditions(old: Status, phase: Phase, reason: str, message: str, now: float) -> Status:
    wanted: dict[ConditionType, bool] = {
        "Ready": phase == "Ready",
        "Progressing": phase == "Progressing",
        "Degraded": phase in ("Degraded", "RolledBack"),
    }
    out = []
    for kind, value in wanted.items():
        before = old.condition(kind)
        changed = before is None or before.status != value
        out.append(
            Condition(
                type=kind,
                status=value,
                reason=reason,
                message=message,
                last_transition=now if changed or before is None else before.last_transition,
            )
        )
    return replace(old, phase=phase, message=message, conditions=tuple(out))


def _start(
    status: Status,
    views: Sequence[WorkloadView],
    desired: VariantName,
    hold: Hold | None,
    now: float,
) -> tuple[Status, Event]:
    previous = status.variant or common_template_variant(views)
    trigger = hold.trigger if hold is not None else "manual"
    reason = hold.reason if hold is not None else REASON_MANUAL
    started = replace(
        status,
        target=desired,
        previous=previous if previous != desired else status.previous,
        change_started=now,
        change_trigger=trigger,
    )
    if previous == desired:
        note = f"following the workloads, which run {desired} already"
    else:
        note = f"switching from {previous or 'nothing'} to {desired} ({reason}, {trigger})"
    return started, Event("Normal", REASON_SWITCHING, note)


def decide(
    spec: Spec,
    generation: int,
    status: Status,
    views: Sequence[WorkloadView],
    now: float,
) -> Decision:
    hold = status.hold if status.hold is not None and status.hold.generation == generation else None
    desired = hold.variant if hold is not None else spec.variant
    new = replace(status, observed_generation=generation, hold=hold)
    events: list[Event] = []
    if new.target != desired or new.change_started is None:
        new, started = _start(new, views, desired, hold, now)
        events.append(started)
    patch = tuple(w.name for w in views if w.exists and w.template_variant != desired)
    # A held variant is the previous one: its version is whatever it was.
    version = spec.model_version if hold is None else None
    states = [progress(w, desired, version) for w in views]
    detail = "; ".join(s.detail for s in states)

    if all(s.done for s in states) and not patch:
        if hold is None:
            phase: Phase = "Ready"
            reason = REASON_READY
        else:
            phase = "RolledBack" if hold.reason == REASON_AUTOMATIC else "Degraded"
            reason = hold.reason
        if new.variant != desired:
            new = new.with_switch(
                Switch(now, new.variant, desired, new_reason(hold), new.change_trigger)
            )
        new = replace(new, variant=desired)
        message = f"serving {desired}" + (f" ({hold.message})" if hold else "") + f": {detail}"
        return _finish(status, new, phase, reason, message, patch, desired, events, now, False)

    started_at = new.change_started if new.change_started is not None else now
    late = now - started_at > spec.progress_deadline_seconds
    if late and hold is None and new.previous is not None and new.previous != desired:
        why = (
            f"{desired} not serving after {spec.progress_deadline_seconds:g}s ({detail}); "
            f"reverted to {new.previous}"
        )
        hold = Hold(generation, new.previous, REASON_DEADLINE, why, "automatic")
        new, started = _start(replace(new, hold=hold), views, hold.variant, hold, now)
        events.append(started)
        patch = tuple(w.name for w in views if w.exists and w.template_variant != hold.variant)
        return _finish(
            status, new, "Degraded", REASON_DEADLINE, why, patch, hold.variant, events, now, True
        )
    if late:
        why = f"{desired} not serving after {spec.progress_deadline_seconds:g}s: {detail}"
        return _finish(
            status, new, "Degraded", REASON_DEADLINE, why, patch, desired, events, now, True
        )
    reason = hold.reason if hold is not None else REASON_SWITCHING
    phase = "Degraded" if hold is not None and hold.reason == REASON_DEADLINE else "Progressing"
    message = f"rolling out {desired}: {detail}"
    return _finish(status, new, phase, reason, message, patch, desired, events, now, True)


def new_reason(hold: Hold | None) -> str:
    return hold.reason if hold is not None else REASON_MANUAL


def _finish(
    before: Status,
    new: Status,
    phase: Phase,
    reason: str,
    message: str,
    patch: tuple[str, ...],
    variant: VariantName,
    events: list[Event],
    now: float,
    busy: bool,
) -> Decision:
    new = _conditions(new, phase, reason, message, now)
    if phase != before.phase:
        kind: Literal["Normal", "Warning"] = (
            "Warning" if phase in ("Degraded", "RolledBack") else "Normal"
        )
        events.append(Event(kind, reason, f"{before.phase} -> {phase}: {message}"))
    return Decision(new, patch, variant, tuple(events), busy)
