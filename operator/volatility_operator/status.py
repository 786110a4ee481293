"""The observed state the operator records in a ModelVariant's status subresource.

Everything the operator needs to carry on after a restart lives here (the change in flight,
its start, what to revert to, a hold after a revert or an automatic rollback), so the process
itself keeps no state that matters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from volatility.names import VARIANTS, VariantName
from volatility_operator.resource import (
    CONDITION_TYPES,
    HISTORY_LIMIT,
    PHASES,
    TRIGGERS,
    ConditionType,
    Phase,
    Trigger,
)


def to_time(epoch: float) -> str:
    """RFC 3339 in UTC, whole seconds (the format of Kubernetes' metav1.Time)."""
    return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_time(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def _variant(value: object) -> VariantName | None:
    for v in VARIANTS:
        if value == v:
            return v
    return None


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: bool
    reason: str
    message: str
    last_transition: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": "True" if self.status else "False",
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": to_time(self.last_transition),
        }


@dataclass(frozen=True)
class Switch:
    """One completed switch of the serving variant."""

    at: float
    source: VariantName | None
    target: VariantName
    reason: str
    trigger: Trigger

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "time": to_time(self.at),
            "to": self.target,
            "reason": self.reason,
            "trigger": self.trigger,
        }
        if self.source is not None:
            out["from"] = self.source
        return out


@dataclass(frozen=True)
class Hold:
    """While the resource keeps ``generation``, serve ``variant`` rather than the spec's.

    Set by a revert (progress deadline) or an automatic rollback; a new generation, i.e. any
    change of the spec by a person, ends it: a manual change always wins.
    """

    generation: int
    variant: VariantName
    reason: str
    message: str
    trigger: Trigger

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "variant": self.variant,
            "reason": self.reason,
            "message": self.message,
            "trigger": self.trigger,
        }


@dataclass(frozen=True)
class Status:
    phase: Phase = "Pending"
    variant: VariantName | None = None  # serving on every governed pod
    observed_generation: int = 0
    target: VariantName | None = None  # the change in flight (or the last one)
    previous: VariantName | None = None  # what the change in flight reverts to
    change_started: float | None = None
    change_trigger: Trigger = "manual"
    message: str = ""
    hold: Hold | None = None
    conditions: tuple[Condition, ...] = ()
    history: tuple[Switch, ...] = field(default=())

    def condition(self, kind: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def with_switch(self, switch: Switch) -> Status:
        return replace(self, history=(*self.history, switch)[-HISTORY_LIMIT:])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phase": self.phase,
            "observedGeneration": self.observed_generation,
            "message": self.message,
            "changeTrigger": self.change_trigger,
            "conditions": [c.to_dict() for c in self.conditions],
            "history": [s.to_dict() for s in self.history],
            # null removes a field in a merge patch
            "variant": self.variant,
            "target": self.target,
            "previous": self.previous,
            "changeStartedAt": None
            if self.change_started is None
            else to_time(self.change_started),
            "hold": None if self.hold is None else self.hold.to_dict(),
        }
        return out


def _phase(value: object) -> Phase:
    return next((p for p in PHASES if p == value), "Pending")


def _trigger(value: object) -> Trigger:
    return next((t for t in TRIGGERS if t == value), "manual")


def parse_status(raw: Mapping[str, Any] | None) -> Status:
    """The status as written by `Status.to_dict`; unknown or missing parts take defaults."""
    if not raw:
        return Status()
    conditions = []
    for c in raw.get("conditions") or []:
        kind = next((t for t in CONDITION_TYPES if t == c.get("type")), None)
        if kind is None:
            continue
        conditions.append(
            Condition(
                type=kind,
                status=c.get("status") == "True",
                reason=str(c.get("reason", "")),
                message=str(c.get("message", "")),
                last_transition=from_time(c["lastTransitionTime"]),
            )
        )
    history = []
    for h in raw.get("history") or []:
        target = _variant(h.get("to"))
        if target is None:
            continue
        history.append(
            Switch(
                at=from_time(h["time"]),
                source=_variant(h.get("from")),
                target=target,
                reason=str(h.get("reason", "")),
                trigger=_trigger(h.get("trigger")),
            )
        )
    hold = None
    rh = raw.get("hold")
    if rh and _variant(rh.get("variant")) is not None:
        hold = Hold(
            generation=int(rh["generation"]),
            variant=_variant(rh["variant"]) or "baseline",
            reason=str(rh.get("reason", "")),
            message=str(rh.get("message", "")),
            trigger=_trigger(rh.get("trigger")),
        )
    started = raw.get("changeStartedAt")
    return Status(
        phase=_phase(raw.get("phase")),
        variant=_variant(raw.get("variant")),
        observed_generation=int(raw.get("observedGeneration") or 0),
        target=_variant(raw.get("target")),
        previous=_variant(raw.get("previous")),
        change_started=from_time(started) if started else None,
        change_trigger=_trigger(raw.get("changeTrigger")),
        message=str(raw.get("message", "")),
        hold=hold,
        conditions=tuple(conditions),
        history=tuple(history),
    )
