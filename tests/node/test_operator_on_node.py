"""The ModelVariant operator as the chart deploys it, in its own pod on the real node: it asks
every API and consumer pod what it serves (GET /version on the pod IP) before it reports
Ready. It reaches the API server through the `kubernetes` Service with its ServiceAccount's
token, as in any cluster; the chart's RBAC is all it has.

Switches baseline -> ml -> baseline, each from a settled release, under a steady load of
predictions through the API's Service (`LOAD_RATE` per second): no request may fail. Prints the
time from the `kubectl patch` to Ready and to the last pod serving the new variant, and how busy
the machine's CPUs were meanwhile.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.node.conftest import NodeCluster
from tests.node.test_chart_on_node import (
    CHART,
    FULLNAME,
    RELEASE,
    Load,
    Release,
    eventually,
    fetch,
    is_ready_on,
    node_values,
)

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def release(node_cluster: NodeCluster) -> Iterator[Release]:
    kube = node_cluster.kube
    ns = kube.namespace("vol-operator", pod_security="restricted")
    kafka, base_values = node_values(node_cluster)
    rel = Release(node_cluster, ns, kafka)
    rel.values = [
        *base_values,  # the operator is on by default
        "--set", "consumer.replicaCount=2",
        "--set", "operator.modelVariant.progressDeadlineSeconds=300",
    ]  # fmt: skip
    kube.helm("install", RELEASE, str(CHART), "-n", ns, *rel.values, "--wait", "--timeout=8m",
              timeout=540)  # fmt: skip
    yield rel
    print(f"--- operator log\n{operator_log(rel)}")
    kube.helm("uninstall", RELEASE, "-n", ns, "--wait", "--timeout=3m", timeout=240, check=False)


def operator_pod(release: Release) -> dict[str, Any]:
    (pod,) = release.pods("operator")
    return pod


def operator_log(release: Release) -> str:
    name = operator_pod(release)["metadata"]["name"]
    result = release.cluster.kube.kubectl("logs", "-n", release.ns, name, "--tail=30", check=False)
    return str(result.stdout)


def served(release: Release) -> dict[str, str | None]:
    """What every live API and consumer pod reports it serves: GET /version on its pod IP (the
    API's HTTP port, the consumer's metrics port)."""
    out: dict[str, str | None] = {}
    for component, port in (("api", 8000), ("consumer", 9000)):
        for pod in release.pods(component):
            url = f"http://{pod['status'].get('podIP')}:{port}/version"
            try:
                out[pod["metadata"]["name"]] = json.loads(fetch(url, 2))["variant"]
            except (OSError, ValueError, KeyError):
                out[pod["metadata"]["name"]] = None
    return out


def wait_settled(release: Release) -> None:
    """Until no pod of the release is terminating: a switch starts from a settled release, not
    in the wake of the one before it (old pods still draining and shutting down)."""
    path = f"/api/v1/namespaces/{release.ns}/pods"

    def settled() -> bool:
        items = release.cluster.kube.plane.api("GET", path)["items"]
        return not any(p["metadata"].get("deletionTimestamp") for p in items)

    eventually(settled, "no pod of the release terminating", 180)


class CpuUse:
    """Between start() and stop(): the share of the machine's CPU time spent busy (from
    /proc/stat), and the cores this test process itself used (its load and its measurement)."""

    @staticmethod
    def _read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    def start(self) -> None:
        self._begin = self._read()
        self._own = time.process_time(), time.monotonic()

    def stop(self) -> str:
        total, idle = (now - then for now, then in zip(self._read(), self._begin, strict=True))
        busy = 1.0 - idle / total if total else 0.0
        own = (time.process_time() - self._own[0]) / (time.monotonic() - self._own[1])
        return f"the machine's CPUs {busy:.0%} busy meanwhile, {own:.2f} cores of it this test's"


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def timeline(release: Release, since: float) -> str:
    """Where a switch's seconds went, per new pod, from the API server's own timestamps (whole
    seconds): created, container started, Ready; relative to the patch."""
    rows = []
    for component in ("api", "consumer"):
        for pod in release.pods(component):
            created = _epoch(pod["metadata"]["creationTimestamp"])
            if created < since - 1:
                continue
            status = pod.get("status") or {}
            started = next(
                (c["state"]["running"]["startedAt"] for c in status.get("containerStatuses", [])
                 if "running" in c.get("state", {})), None,
            )  # fmt: skip
            ready = next(
                (c["lastTransitionTime"] for c in status.get("conditions", [])
                 if c["type"] == "Ready" and c["status"] == "True"), None,
            )  # fmt: skip
            marks = [("created", created), ("started", _epoch(started) if started else None),
                     ("ready", _epoch(ready) if ready else None)]  # fmt: skip
            rows.append(f"{pod['metadata']['name']}: " + ", ".join(
                f"{name} +{at - since:.0f}s" for name, at in marks if at is not None
            ))  # fmt: skip
    return "\n".join(rows)


def test_the_operator_finds_every_pod_serving_the_chart_variant(release: Release) -> None:
    deadline = time.monotonic() + 120
    while not is_ready_on("baseline")(obj := release.model_variant()):
        assert time.monotonic() < deadline, obj.get("status")
        time.sleep(0.5)  # poll against the deadline
    assert "reported by every pod" in obj["status"]["message"], obj["status"]["message"]


@pytest.mark.parametrize("variant", ["ml", "baseline"])
def test_a_switch_under_load_fails_no_request(release: Release, variant: str) -> None:
    kube = release.cluster.kube
    base = release.service_url("api", "http")
    wait_settled(release)
    cpu = CpuUse()
    with Load(base) as load:
        cpu.start()
        start, patched_at = time.monotonic(), time.time()
        kube.kubectl(
            "-n", release.ns, "patch", "mv", FULLNAME, "--type", "merge",
            "-p", json.dumps({"spec": {"variant": variant}}),
        )  # fmt: skip
        last_pod = ready_at = None
        while ready_at is None or last_pod is None:
            now = time.monotonic()
            assert now - start < 300, (release.model_variant().get("status"), served(release))
            if last_pod is None:
                reports = served(release)
                if reports and all(v == variant for v in reports.values()):
                    last_pod = time.monotonic() - start
            if ready_at is None and is_ready_on(variant)(release.model_variant()):
                ready_at = time.monotonic() - start
            time.sleep(0.1)  # sampling period of the measurement
        # Old API pods keep answering new connections during their preStop sleep, until the
        # node's proxy has seen them leave the endpoints: through the Service, the new variant
        # alone answers a little after Ready. Twenty answers in a row, all of it.
        in_a_row = 0
        while in_a_row < 20:
            assert time.monotonic() - start < 120, "the Service still answers the old variant"
            with urllib.request.urlopen(base + "/version", timeout=5) as r:  # noqa: S310
                in_a_row = in_a_row + 1 if json.load(r)["variant"] == variant else 0
        service_only = time.monotonic() - start
        cpu_use = cpu.stop()
    print(
        f"switch to {variant} on the real node: Ready after {ready_at:.1f}s, last pod serving "
        f"after {last_pod:.1f}s, the Service answering only {variant} after {service_only:.1f}s; "
        f"{load.ok} requests succeeded ({load.ok / service_only:.0f}/s), "
        f"{len(load.failures)} failed; {cpu_use}\n"
        f"{timeline(release, patched_at)}"
    )
    assert load.ok > 20
    assert not load.failures, load.failures[:10]
    obj = release.model_variant()
    assert "reported by every pod" in obj["status"]["message"]


def test_the_operator_pod_stayed_live_and_its_watch_healthy(release: Release) -> None:
    pod = operator_pod(release)
    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"] and status["restartCount"] == 0, status
    ip = pod["status"]["podIP"]
    body = json.loads(fetch(f"http://{ip}:8080/healthz", 5))
    assert body == {"watch": "1 resources up to date"}
