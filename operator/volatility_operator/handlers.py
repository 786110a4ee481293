"""kopf handlers: translate between the cluster and the pure decision modules.

One daemon per ModelVariant carries out the reconciliation: observe, `rollout.decide`, act, look
again (soon while a change is in flight). It starts for every resource when the operator starts
(resume) and when one is created; watch events of a resource wake it at once (update). A probe
checks that the watch keeps up with the API server (liveness).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import kopf

from volatility_operator import autorollback, prometheus
from volatility_operator.config import OperatorConfig
from volatility_operator.kube import Kube
from volatility_operator.loops import Loops
from volatility_operator.observed import Report, WorkloadView, serving, workload_view
from volatility_operator.probe import probe_pod
from volatility_operator.resource import GROUP, PLURAL, VERSION
from volatility_operator.rollout import decide
from volatility_operator.spec import Spec, SpecError, parse_spec
from volatility_operator.status import Hold, parse_status
from volatility_operator.watchhealth import WatchHealth

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[Any]

# Our own registry, not kopf's global one: importing this module twice registers nothing twice.
REGISTRY = kopf.OperatorRegistry()


@kopf.on.login(registry=REGISTRY)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The credentials the official client finds: the pod's ServiceAccount, else $KUBECONFIG."""
    return kopf.login_via_client(**kwargs)


@kopf.on.startup(registry=REGISTRY)
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: OperatorConfig = memo.config
    # Events are posted explicitly, one per transition, not for every log line.
    settings.posting.enabled = False
    # One namespace and a CRD installed before the operator: no need to watch Namespaces and
    # CRDs cluster-wide (which would need a ClusterRole).
    settings.scanning.disabled = True
    # The API server ends each watch after this long and kopf opens a new one, so a silently
    # dead connection is replaced within this time (the liveness probe catches the rest).
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150
    kube = Kube(config.namespace)
    memo.kube = kube
    memo.watch = WatchHealth(tolerance=config.watch_tolerance)
    memo.loops = Loops(lambda name: follow(name, memo))


@kopf.on.cleanup(registry=REGISTRY)
async def stop(memo: kopf.Memo, **_: Any) -> None:
    loops: Loops = memo.loops
    await loops.stop_all()


@kopf.on.event(GROUP, VERSION, PLURAL, registry=REGISTRY)
async def on_event(
    event: kopf.RawEvent, name: str, meta: kopf.Meta, memo: kopf.Memo, **_: Any
) -> None:
    """Every watch event (the initial listing included: that is the resume) wakes the
    resource's loop; a deletion ends it. No finalizer: nothing has to happen at deletion."""
    watch: WatchHealth = memo.watch
    loops: Loops = memo.loops
    if event.get("type") == "DELETED":
        watch.deleted(name)
        loops.stop(name)
        return
    watch.delivered(name, str(meta.get("resourceVersion")))
    loops.wake(name)


@kopf.on.probe(id="watch", registry=REGISTRY)
async def watch_keeps_up(memo: kopf.Memo, **_: Any) -> str:
    kube: Kube = memo.kube
    watch: WatchHealth = memo.watch
    try:
        listed = await asyncio.to_thread(kube.resource_versions)
    except Exception as exc:  # any failure must answer the probe, never make it wait
        raise kopf.PermanentError(f"cannot list the resources: {exc}") from exc
    loops: Loops = memo.loops
    problem = watch.check(listed, time.monotonic()) or loops.problem()
    if problem is not None:
        raise kopf.PermanentError(problem)  # the liveness endpoint answers 500
    return f"{len(listed)} resources up to date"


def _observe(kube: Kube, spec: Spec, probe: bool) -> list[WorkloadView]:
    found = []
    for w in spec.workloads:
        deployment = kube.deployment(w.name)
        found.append((w, deployment, kube.pods(deployment) if deployment is not None else []))
    reports: dict[str, Report] | None = None
    if probe:
        # Every serving pod of every workload at once: a slow pod costs one timeout per pass,
        # not one per pod.
        asked = [(p, w.role) for w, _, pods in found for p in pods if serving(p)]
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(asked)))) as pool:
            answers = pool.map(lambda a: probe_pod(*a), asked)
            reports = {p["metadata"]["name"]: r for (p, _), r in zip(asked, answers, strict=True)}
    return [
        workload_view(w.name, w.role, deployment, pods, reports) for w, deployment, pods in found
    ]


@dataclass
class ResourceState:
    """What a resource's loop keeps between passes (lost on restart, which only delays)."""

    tracker: autorollback.BreachTracker = field(default_factory=autorollback.BreachTracker)
    sampled_at: float | None = None
    invalid_generation: int | None = None


async def _signals_hold(
    state: ResourceState, config: OperatorConfig, spec: Spec, body: dict[str, Any], logger: Logger
) -> Hold | None:
    policy = spec.auto_rollback
    if config.prometheus_url is None or policy is None or not policy.enabled:
        return None
    now = time.monotonic()
    if state.sampled_at is not None and now - state.sampled_at < config.signal_interval:
        return None
    state.sampled_at = now
    exprs = prometheus.queries(config.prometheus_selector)
    wanted = {s: exprs[s] for s in policy.thresholds}
    samples = await asyncio.to_thread(prometheus.sample, config.prometheus_url, wanted)
    status = parse_status(body.get("status"))
    generation = int(body["metadata"].get("generation", 0))
    hold = autorollback.evaluate(
        policy, status, generation, state.tracker, samples, now, time.time()
    )
    logger.info("signals %s, breaching %s", samples, sorted(state.tracker.since))
    return hold


async def reconcile(name: str, memo: kopf.Memo, state: ResourceState, logger: Logger) -> bool:
    """One pass; True while a change is in flight."""
    config: OperatorConfig = memo.config
    kube: Kube = memo.kube
    body = await asyncio.to_thread(kube.resource, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return False
    generation = int(body["metadata"].get("generation", 0))
    try:
        spec = parse_spec(body.get("spec") or {}, config.default_workloads)
    except SpecError as exc:
        if state.invalid_generation != generation:  # one Event per spec, not one per look
            state.invalid_generation = generation
            await asyncio.to_thread(kube.post_event, body, "Warning", "InvalidSpec", str(exc))
        return False
    status = parse_status(body.get("status"))
    hold = await _signals_hold(state, config, spec, body, logger)
    if hold is not None:
        status = replace(status, hold=hold)
        logger.warning("automatic rollback: %s", hold.message)
    views = await asyncio.to_thread(_observe, kube, spec, config.probe_pods)
    decision = decide(spec, generation, status, views, time.time())
    for workload in decision.patch:
        deployment = await asyncio.to_thread(kube.deployment, workload)
        if deployment is not None:
            await asyncio.to_thread(kube.set_variant, deployment, decision.variant)
            logger.info("set %s to %s", workload, decision.variant)
    new = decision.status.to_dict()
    old = body.get("status") or {}
    if any(old.get(k) != v for k, v in new.items()):
        await asyncio.to_thread(kube.patch_status, name, new)
    for event in decision.events:
        await asyncio.to_thread(kube.post_event, body, event.type, event.reason, event.message)
        logger.info("%s: %s", event.reason, event.message)
    return decision.busy or bool(decision.patch)


async def follow(name: str, memo: kopf.Memo) -> None:
    """A resource's reconciliation loop: look, act, look again (soon while busy)."""
    config: OperatorConfig = memo.config
    loops: Loops = memo.loops
    state = ResourceState()
    logger = logging.LoggerAdapter(log, {"modelvariant": name, "namespace": config.namespace})
    while True:
        loops.clear(name)
        try:
            busy = await reconcile(name, memo, state, logger)
        except Exception as exc:  # an API hiccup must not end the loop: look again soon
            logger.error("reconcile failed: %s", exc)
            busy = True
        await loops.wait(name, config.busy_interval if busy else config.idle_interval)
