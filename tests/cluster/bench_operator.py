"""`make bench-operator`: how long a switch of model variant takes, from `kubectl apply` of the
release's ModelVariant to Ready, and to the last pod running the new variant.

On the control plane with kwok nodes (tests/infra): pods report Running and Ready as soon as
they are scheduled, so these figures are the operator's and the controllers' share of a switch
(API and consumer at 2 replicas each); on real pods, each surge step adds a container start, a
model load and a readiness probe period. Prints one line per figure and writes them to
bench-results/operator.json. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.cluster.conftest import _provision
from tests.cluster.operator_process import OperatorProcess, service_account_kubeconfig
from tests.cluster.operator_release import ACCOUNT, WORKLOADS, Release, install
from tests.infra.controlplane import ControlPlane, Kube

REPO = Path(__file__).resolve().parents[2]


def _last_pod_switched(release: Release, variant: str) -> bool:
    """Every non-terminating pod of both workloads runs ``variant`` and is Ready."""
    for role in WORKLOADS:
        d = release.deployment(role)
        labels = d["spec"]["selector"]["matchLabels"]
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        pods = release.kube.plane.api(
            "GET", f"/api/v1/namespaces/{release.ns}/pods?labelSelector={selector}"
        )["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        if len(live) != d["spec"]["replicas"]:
            return False
        for pod in live:
            (container,) = pod["spec"]["containers"]
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in pod["status"].get("conditions", [])
            )
            if env.get("MODEL_VARIANT") != variant or not ready:
                return False
    return True


def measure(release: Release, switches: int) -> dict[str, Any]:
    to_ready, to_pods = [], []
    variant = "baseline"
    release.ready_on(variant)
    for _ in range(switches):
        variant = "ml" if variant == "baseline" else "baseline"
        start = time.monotonic()
        release.apply({"variant": variant})
        pods_at = None
        while True:
            obj = release.mv()
            now = time.monotonic()
            if pods_at is None and _last_pod_switched(release, variant):
                pods_at = now
            status = obj.get("status") or {}
            if status.get("phase") == "Ready" and status.get("variant") == variant and pods_at:
                to_ready.append(now - start)
                to_pods.append(pods_at - start)
                break
            if now - start > 120:
                raise RuntimeError(f"no Ready on {variant} after 120 s: {status}")
            time.sleep(0.02)  # sampling period of the measurement
    return {
        "switches": switches,
        "replicas": {"api": 2, "consumer": 2},
        "apply_to_ready_seconds": _summary(to_ready),
        "apply_to_last_pod_seconds": _summary(to_pods),
        "nodes": "kwok (pods run no containers)",
    }


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
        "max": round(ordered[-1], 3),
        "min": round(ordered[0], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench-operator", description=__doc__)
    parser.add_argument("--switches", type=int, default=10, help="switches to time (default 10)")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "operator.json")
    args = parser.parse_args()
    tools, k8s = _provision("provision-tools.sh"), _provision("provision-k8s.sh")
    with ControlPlane(k8s) as plane, tempfile.TemporaryDirectory() as tmp:
        kube = Kube(plane, tools, k8s)
        ns = kube.namespace("bench", pod_security="restricted")
        operator_args = install(kube, ns)
        config = service_account_kubeconfig(kube, ns, ACCOUNT, Path(tmp) / "kubeconfig")
        operator = OperatorProcess(
            [*operator_args, "--no-probe-pods"], config, ns, Path(tmp) / "operator.log"
        )
        operator.start()
        try:
            result = measure(Release(kube, ns, operator, None), args.switches)
        finally:
            operator.stop()
    for key in ("apply_to_ready_seconds", "apply_to_last_pod_seconds"):
        s = result[key]
        print(f"{key}: median {s['median']:.2f}  p90 {s['p90']:.2f}  max {s['max']:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
