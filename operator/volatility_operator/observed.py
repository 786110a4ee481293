"""The actual state of the governed workloads, and whether it serves a variant.

Built from plain API objects (dicts) and, when pods are probed, from what each pod reports it
serves. Pure: the `kube` and `probe` adapters fetch, this module judges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from volatility.names import VARIANTS, VariantName
from volatility_operator.resource import VARIANT_ENV, Role


@dataclass(frozen=True)
class Report:
    """What a pod says it serves (GET /version: the API on its http port, the consumer on its
    metrics port)."""

    variant: str | None
    version: str | None
    error: str | None = None


@dataclass(frozen=True)
class PodView:
    name: str
    ready: bool
    terminating: bool
    template_variant: str | None
    report: Report | None  # None when pods are not probed


@dataclass(frozen=True)
class WorkloadView:
    name: str
    role: Role
    exists: bool
    template_variant: str | None = None
    generation: int = 0
    observed_generation: int = 0
    replicas: int = 0
    updated: int = 0
    available: int = 0
    total: int = 0
    pods: tuple[PodView, ...] = ()


@dataclass(frozen=True)
class Progress:
    done: bool
    detail: str


def variant_env(pod_spec: Mapping[str, Any]) -> str | None:
    """The MODEL_VARIANT value of the first container that sets it."""
    for container in pod_spec.get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == VARIANT_ENV and "value" in env:
                return str(env["value"])
    return None


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def serving(pod: Mapping[str, Any]) -> bool:
    """Ready and not terminating: the pods `progress` judges, so the only ones worth asking.
    A terminating pod's address may already be gone, and asking it costs a whole timeout."""
    return _pod_ready(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp")


def workload_view(
    name: str,
    role: Role,
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    reports: Mapping[str, Report] | None,
) -> WorkloadView:
    if deployment is None:
        return WorkloadView(name=name, role=role, exists=False)
    meta, spec = deployment.get("metadata") or {}, deployment.get("spec") or {}
    status = deployment.get("status") or {}
    views = []
    for pod in pods:
        pod_name = str((pod.get("metadata") or {}).get("name"))
        views.append(
            PodView(
                name=pod_name,
                ready=_pod_ready(pod),
                terminating=bool((pod.get("metadata") or {}).get("deletionTimestamp")),
                template_variant=variant_env(pod.get("spec") or {}),
                report=None if reports is None else reports.get(pod_name),
            )
        )
    return WorkloadView(
        name=name,
        role=role,
        exists=True,
        template_variant=variant_env(((spec.get("template") or {}).get("spec")) or {}),
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        replicas=int(spec.get("replicas", 1)),
        updated=int(status.get("updatedReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        total=int(status.get("replicas") or 0),
        pods=tuple(sorted(views, key=lambda p: p.name)),
    )


def progress(w: WorkloadView, variant: VariantName, version: str | None) -> Progress:
    """Whether every serving replica of ``w`` serves ``variant`` (and ``version`` if given)."""
    if not w.exists:
        return Progress(False, f"{w.name}: Deployment not found")
    if w.template_variant != variant:
        return Progress(False, f"{w.name}: pod template runs {w.template_variant}")
    if w.observed_generation < w.generation:
        return Progress(False, f"{w.name}: rollout not yet observed by its controller")
    if w.updated < w.replicas or w.available < w.replicas or w.total > w.replicas:
        return Progress(
            False,
            f"{w.name}: {w.updated}/{w.replicas} updated, {w.available} available, "
            f"{w.total - w.updated} old replicas left",
        )
    live = [p for p in w.pods if not p.terminating]
    serving = [p for p in live if p.ready]
    if len(serving) < w.replicas:
        return Progress(False, f"{w.name}: {len(serving)}/{w.replicas} pods ready")
    stale = [p.name for p in serving if p.template_variant != variant]
    if stale:
        return Progress(False, f"{w.name}: pods still on the old template: {', '.join(stale)}")
    for pod in serving:
        report = pod.report
        if report is None and any(p.report is not None for p in serving):
            return Progress(False, f"{w.name}: pod {pod.name} not probed yet")
        if report is None and version is not None:
            # Only the pods know which version they loaded.
            return Progress(False, f"{w.name}: modelVersion {version} needs --probe-pods")
        if report is None:
            continue
        if report.error is not None:
            return Progress(False, f"{w.name}: pod {pod.name} did not answer: {report.error}")
        if report.variant != variant:
            return Progress(False, f"{w.name}: pod {pod.name} serves {report.variant}")
        if version is not None and report.version != version:
            return Progress(
                False, f"{w.name}: pod {pod.name} serves version {report.version}, not {version}"
            )
    how = "reported by every pod" if serving and serving[0].report else "per pod template"
    return Progress(True, f"{w.name}: {len(serving)}/{w.replicas} pods serve {variant} ({how})")


def common_template_variant(views: Sequence[WorkloadView]) -> VariantName | None:
    """The variant every existing workload's template runs, if they agree."""
    found = {w.template_variant for w in views if w.exists}
    if len(found) == 1:
        (only,) = found
        return next((v for v in VARIANTS if v == only), None)
    return None
