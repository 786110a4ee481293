"""Small builders of the operator's inputs: specs, workloads as the API server shows them."""

from __future__ import annotations

from volatility_operator.observed import PodView, Report, WorkloadView
from volatility_operator.spec import AutoRollback, Spec, Workload

WORKLOADS = (Workload("rel-api", "api"), Workload("rel-consumer", "consumer"))


def spec(
    variant: str = "ml",
    *,
    version: str | None = None,
    deadline: float = 60.0,
    auto: AutoRollback | None = None,
) -> Spec:
    assert variant in ("baseline", "ml")
    return Spec(
        variant=variant,  # type: ignore[arg-type]
        model_version=version,
        workloads=WORKLOADS,
        progress_deadline_seconds=deadline,
        auto_rollback=auto,
    )


def rolled_out(
    name: str,
    variant: str,
    *,
    replicas: int = 2,
    reports: list[Report] | None = None,
    role: str = "api",
) -> WorkloadView:
    """A Deployment whose rollout of ``variant`` is complete."""
    pods = tuple(
        PodView(
            name=f"{name}-{i}",
            ready=True,
            terminating=False,
            template_variant=variant,
            report=None if reports is None else reports[i],
        )
        for i in range(replicas)
    )
    return WorkloadView(
        name=name,
        role=role,  # type: ignore[arg-type]
        exists=True,
        template_variant=variant,
        generation=3,
        observed_generation=3,
        replicas=replicas,
        updated=replicas,
        available=replicas,
        total=replicas,
        pods=pods,
    )


def rolling(name: str, new: str, old: str, *, replicas: int = 2) -> WorkloadView:
    """Template at ``new``; one new pod up, the old ones still serving ``old``."""
    pods = (
        PodView(f"{name}-new", True, False, new, None),
        *(PodView(f"{name}-old{i}", True, False, old, None) for i in range(replicas)),
    )
    return WorkloadView(
        name=name,
        role="api",
        exists=True,
        template_variant=new,
        generation=4,
        observed_generation=4,
        replicas=replicas,
        updated=1,
        available=replicas,
        total=replicas + 1,
        pods=pods,
    )


def both(variant: str, **kw: object) -> list[WorkloadView]:
    return [rolled_out(w.name, variant, **kw) for w in WORKLOADS]  # type: ignore[arg-type]
