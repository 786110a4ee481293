"""The desired state: a ModelVariant's spec, parsed from what the API server validated.

The CRD's schema is the validation (enums, ranges, CEL rules); parsing here only gives it
types. The defaults equal the CRD's (a unit test compares them), for objects written before a
default existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from volatility.names import VARIANTS, VariantName
from volatility_operator.resource import ROLES, SIGNALS, Role, Signal

DEFAULT_PROGRESS_DEADLINE_SECONDS: Final = 120
DEFAULT_WINDOW_SECONDS: Final = 60
DEFAULT_COOLDOWN_SECONDS: Final = 300
DEFAULT_CLEAR_RATIO: Final = 0.8


class SpecError(ValueError):
    """A spec the operator cannot act on (the API server's validation should prevent it)."""


@dataclass(frozen=True)
class Workload:
    """A Deployment the resource governs and what it runs (how its pods report their model)."""

    name: str
    role: Role


@dataclass(frozen=True)
class AutoRollback:
    """Switch to the baseline when a signal stays above its threshold for ``window_seconds``."""

    enabled: bool
    thresholds: Mapping[Signal, float]
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS
    # Hysteresis: a breach that started ends only once the value is below threshold * ratio.
    clear_ratio: float = DEFAULT_CLEAR_RATIO


@dataclass(frozen=True)
class Spec:
    variant: VariantName
    model_version: str | None
    workloads: tuple[Workload, ...]
    progress_deadline_seconds: float
    auto_rollback: AutoRollback | None


def _variant(value: object) -> VariantName:
    for v in VARIANTS:
        if value == v:
            return v
    raise SpecError(f"spec.variant: {value!r} is not one of {', '.join(VARIANTS)}")


def _role(value: object) -> Role:
    for r in ROLES:
        if value == r:
            return r
    raise SpecError(f"spec.workloads[].role: {value!r} is not one of {', '.join(ROLES)}")


def _auto_rollback(raw: Mapping[str, Any] | None) -> AutoRollback | None:
    if not raw:
        return None
    thresholds: dict[Signal, float] = {}
    for signal in SIGNALS:
        value = raw.get(signal)
        if value is not None:
            thresholds[signal] = float(value)
    return AutoRollback(
        enabled=bool(raw.get("enabled", False)),
        thresholds=thresholds,
        window_seconds=float(raw.get("windowSeconds", DEFAULT_WINDOW_SECONDS)),
        cooldown_seconds=float(raw.get("cooldownSeconds", DEFAULT_COOLDOWN_SECONDS)),
        clear_ratio=float(raw.get("clearRatio", DEFAULT_CLEAR_RATIO)),
    )


def parse_spec(raw: Mapping[str, Any], default_workloads: Sequence[Workload]) -> Spec:
    """The typed spec; ``default_workloads`` (the release's API and consumer) when none given."""
    listed = cast(list[Mapping[str, Any]], raw.get("workloads") or [])
    workloads = tuple(Workload(str(w["name"]), _role(w.get("role"))) for w in listed)
    if not workloads:
        workloads = tuple(default_workloads)
    if not workloads:
        raise SpecError("spec.workloads is empty and the operator has no default workloads")
    version = raw.get("modelVersion")
    return Spec(
        variant=_variant(raw.get("variant")),
        model_version=str(version) if version else None,
        workloads=workloads,
        progress_deadline_seconds=float(
            raw.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_SECONDS)
        ),
        auto_rollback=_auto_rollback(cast(Mapping[str, Any] | None, raw.get("autoRollback"))),
    )


def parse_workloads(text: str) -> tuple[Workload, ...]:
    """``role=name,role=name`` (the operator's --default-workloads) to workloads."""
    out: list[Workload] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        role, sep, name = item.partition("=")
        if not sep or not name.strip():
            raise SpecError(f"{item!r}: expected role=deployment-name")
        out.append(Workload(name.strip(), _role(role.strip())))
    return tuple(out)
