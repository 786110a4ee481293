"""The operator's own settings, given on its command line (see `command`)."""

from __future__ import annotations

from dataclasses import dataclass

from volatility_operator.spec import Workload


@dataclass(frozen=True)
class OperatorConfig:
    namespace: str
    # Governed when a ModelVariant names no workloads: the release's API and consumer.
    default_workloads: tuple[Workload, ...]
    # Ask every pod what it serves (on a cluster whose pods run); else trust the pod template.
    probe_pods: bool
    prometheus_url: str | None
    prometheus_selector: str = ""
    # Seconds between looks while a change is in flight / when all is steady.
    busy_interval: float = 0.5
    idle_interval: float = 5.0
    # Seconds between Prometheus samples (automatic rollback).
    signal_interval: float = 10.0
    # Seconds the watch may lag behind the API server before the liveness probe fails.
    watch_tolerance: float = 60.0
