"""The chart on a real Kubernetes 1.34 control plane (kwok nodes: pods run no containers).

`helm install --wait` of the kwok scenario into a namespace that enforces the `restricted` Pod
Security Standard, `helm test`, an upgrade that changes one component, invalid values refused
by the server-side install, and what `helm uninstall` leaves behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.infra.controlplane import Kube

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "volatility"
KWOK_VALUES = CHART / "ci" / "06-kwok-values.yaml"
RELEASE = "vol"
COMPONENTS = ("ingest", "featurizer", "consumer", "api", "operator")
# Namespaced kinds the chart creates (directly or through controllers) and that must be gone
# after `helm uninstall`, except the documented leftovers.
KINDS = (
    "deployments.apps",
    "replicasets.apps",
    "statefulsets.apps",
    "pods",
    "services",
    "configmaps",
    "secrets",
    "serviceaccounts",
    "jobs.batch",
    "poddisruptionbudgets.policy",
    "networkpolicies.networking.k8s.io",
    "horizontalpodautoscalers.autoscaling",
    "ingresses.networking.k8s.io",
    "persistentvolumeclaims",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "modelvariants.volatility.dev",
)


def _get(kube: Kube, ns: str, *args: str) -> Any:
    return json.loads(kube.kubectl("get", "-n", ns, *args, "-o", "json").stdout)


def _eventually(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    """Polls a condition the API server reaches asynchronously (garbage collection)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def _install(kube: Kube, ns: str, *args: str) -> None:
    kube.helm(
        "install", RELEASE, str(CHART), "-n", ns, "-f", str(KWOK_VALUES),
        "--wait", "--timeout=240s", *args, timeout=300,
    )  # fmt: skip


def _deployments(kube: Kube, ns: str) -> dict[str, dict[str, Any]]:
    items = _get(kube, ns, "deployments", "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in items}


def _rolled_out(deployment: dict[str, Any]) -> bool:
    status, wanted = deployment["status"], deployment["spec"]["replicas"]
    return bool(
        status.get("observedGeneration") == deployment["metadata"]["generation"]
        and status.get("updatedReplicas") == wanted
        and status.get("availableReplicas") == wanted
        and status.get("replicas") == wanted
    )


def _leftovers(kube: Kube, ns: str) -> list[str]:
    proc = kube.kubectl(
        "get", ",".join(KINDS), "-n", ns, "-l", f"app.kubernetes.io/instance={RELEASE}",
        "-o", "name",
    )  # fmt: skip
    return sorted(proc.stdout.split())


@pytest.fixture(scope="module")
def installed(kube: Kube) -> str:
    ns = kube.namespace("chart", pod_security="restricted")
    _install(kube, ns)
    return ns


def test_install_in_a_restricted_namespace_makes_every_deployment_available(
    kube: Kube, installed: str
) -> None:
    deployments = _deployments(kube, installed)
    assert set(deployments) == set(COMPONENTS)
    for name, deployment in deployments.items():
        status = deployment["status"]
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        assert conditions.get("Available") == "True", (name, status)
        assert status.get("availableReplicas") == deployment["spec"]["replicas"], (name, status)
    (kafka,) = _get(kube, installed, "statefulsets")["items"]
    assert kafka["status"].get("readyReplicas") == 1
    # Admission ran on every pod: the namespace enforces `restricted`, so a pod that broke it
    # would have been refused and its Deployment would never have become available.
    labels = _get(kube, "default", "namespace", installed)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    release = json.loads(kube.helm("status", RELEASE, "-n", installed, "-o", "json").stdout)
    assert release["info"]["status"] == "deployed"
    # The post-install topics Job ran, succeeded and was removed by its delete policy.
    assert _get(kube, installed, "jobs")["items"] == []


def test_helm_test_pod_is_admitted_and_passes(kube: Kube, installed: str) -> None:
    result = kube.helm("test", RELEASE, "-n", installed, "--timeout=120s", timeout=180)
    assert "Phase:          Succeeded" in result.stdout, result.stdout


def test_invalid_values_are_refused_and_change_nothing(kube: Kube, installed: str) -> None:
    history = json.loads(kube.helm("history", RELEASE, "-n", installed, "-o", "json").stdout)
    failed = kube.helm(
        "upgrade", RELEASE, str(CHART), "-n", installed, "--reuse-values",
        "--set", "consumer.modelVariant=deep", check=False,
    )  # fmt: skip
    assert failed.returncode != 0
    assert "/consumer/modelVariant" in failed.stderr, failed.stderr
    after = json.loads(kube.helm("history", RELEASE, "-n", installed, "-o", "json").stdout)
    assert after == history
    other = kube.namespace("chart-invalid", pod_security="restricted")
    refused = kube.helm(
        "install", RELEASE, str(CHART), "-n", other, "--set", "kafka.enabled=false", check=False
    )
    assert refused.returncode != 0
    assert "kafka.bootstrapServers is required" in refused.stderr, refused.stderr
    assert json.loads(kube.helm("list", "-n", other, "-a", "-o", "json").stdout) == []
    assert _leftovers(kube, other) == []


def test_upgrade_of_one_component_rolls_only_that_component(kube: Kube, installed: str) -> None:
    before = _deployments(kube, installed)
    (kafka_before,) = _get(kube, installed, "statefulsets")["items"]
    kube.helm(
        "upgrade", RELEASE, str(CHART), "-n", installed, "--reuse-values",
        "--set-string", "consumer.podAnnotations.example\\.org/touched=1",
        "--wait", "--timeout=240s", timeout=300,
    )  # fmt: skip
    after = _deployments(kube, installed)
    for name in COMPONENTS:
        old, new = before[name], after[name]
        if name == "consumer":
            assert new["metadata"]["generation"] == old["metadata"]["generation"] + 1
            annotations = new["spec"]["template"]["metadata"]["annotations"]
            assert annotations["example.org/touched"] == "1"
        else:
            assert new["metadata"]["generation"] == old["metadata"]["generation"], name
            assert new["spec"]["template"] == old["spec"]["template"], name
    (kafka_after,) = _get(kube, installed, "statefulsets")["items"]
    assert kafka_after["metadata"]["generation"] == kafka_before["metadata"]["generation"]
    # --wait returned once the new ReplicaSet was ready; the Deployment's status follows.
    _eventually(
        lambda: _rolled_out(_deployments(kube, installed)["consumer"]), "the consumer rollout"
    )


@pytest.mark.parametrize(
    ("when_deleted", "expected"),
    [
        # The documented leftover: the broker's claim, kept by default so data survives.
        ("Retain", [f"persistentvolumeclaim/data-{RELEASE}-volatility-kafka-0"]),
        ("Delete", []),
    ],
)
def test_uninstall_leaves_only_the_documented_leftovers(
    kube: Kube, when_deleted: str, expected: list[str]
) -> None:
    ns = kube.namespace("chart-uninstall", pod_security="restricted")
    # With persistence the claim never binds on kwok nodes, so the broker stays Pending: no
    # --wait here, but the StatefulSet controller still creates the claim.
    kube.helm(
        "install", RELEASE, str(CHART), "-n", ns, "-f", str(KWOK_VALUES),
        "--set", "kafka.persistence.enabled=true",
        "--set", f"kafka.persistence.whenDeleted={when_deleted}",
        "--set", "kafka.topics.job.enabled=false", timeout=300,
    )  # fmt: skip
    claim = f"data-{RELEASE}-volatility-kafka-0"
    kube.kubectl("wait", "-n", ns, "--for=create", f"pvc/{claim}", "--timeout=60s")
    kube.helm("uninstall", RELEASE, "-n", ns, "--wait", "--timeout=120s", timeout=180)
    _eventually(lambda: _leftovers(kube, ns) == expected, f"only {expected} to remain")
