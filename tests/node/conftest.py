"""Fixtures of the real-node tier: the chart's pods really run.

    node_cluster -> NodeCluster      session-scoped: a control plane of its own (the cluster
                                     tier's plane schedules onto kwok nodes) with one real
                                     node: containerd + runc, kubelet, kube-proxy, CoreDNS
    node_cluster.kube                kubectl/helm wired to it (tests/infra/controlplane.Kube)
    node_cluster.node                the Node: container_pid(), crictl(), log_tail()
    node_cluster.images              the OCI archives of the project images built here
    node_cluster.gateway_port        Traefik (GatewayClass `traefik`) serves Gateway listeners
                                     of this port number on 127.0.0.1
    node_cluster.monitoring          the Prometheus Operator's CRDs, RBAC and image names

Every test in this directory carries the `node` marker. Provisioning (packages, Go builds,
Debian base and Kafka images, the project images with buildah) happens before the first test,
outside the per-test timeout; warm it only checks stamps and hashes. The tier needs root.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.controlplane import Kube
from tests.infra.node import Node, NodePlane

INFRA = Path(__file__).resolve().parents[1] / "infra"
_DIRS = pytest.StashKey[tuple[Path, Path, Path, Path]]()


def _provision(script: str) -> Path:
    proc = subprocess.run(
        ["bash", str(INFRA / script)], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise pytest.UsageError(f"tests/infra/{script} failed with exit code {proc.returncode}")
    return Path(proc.stdout.strip().splitlines()[-1])


def _provision_all() -> tuple[Path, Path, Path, Path]:
    if os.geteuid() != 0:
        raise pytest.UsageError("the node tests run a kubelet and containerd: they need root")
    return (
        _provision("provision-tools.sh"),
        _provision("provision-k8s.sh"),
        _provision("provision-node.sh"),
        _provision("build-images.sh"),
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` deselection looks at the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.node)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if not any(item.get_closest_marker("node") for item in session.items):
        return
    capman = session.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        session.config.stash[_DIRS] = _provision_all()


@dataclass
class NodeCluster:
    kube: Kube
    node: Node
    images: Path  # directory of the project images' OCI archives
    version: str  # their tag
    gateway_port: int  # Traefik's entry point on 127.0.0.1: Gateway listeners use this port
    monitoring: Path  # the Prometheus Operator's CRDs, RBAC and images.json (provision-node.sh)


@pytest.fixture(scope="session")
def node_cluster(request: pytest.FixtureRequest) -> Iterator[NodeCluster]:
    dirs = request.config.stash.get(_DIRS, None) or _provision_all()
    tools_bin, k8s_bin, node_dir, app_images = dirs
    archives = sorted((node_dir / "images").glob("*.tar")) + sorted(app_images.glob("*.tar"))
    version = app_images.name.split("-")[1]
    keep = os.environ.get("VOLATILITY_KEEP_CLUSTER") == "1"
    with NodePlane(k8s_bin, keep_workdir=keep) as plane:
        if keep:
            print(f"\ncontrol plane work dir: {plane.workdir}", file=sys.stderr)
        with Node(plane, node_dir / "bin", archives, tools_bin=tools_bin) as node:
            port = node.start_gateway_controller(node_dir / "gateway-api-crds")
            kube = Kube(plane, tools_bin, k8s_bin)
            cluster = NodeCluster(
                kube, node, app_images, version, port, node_dir / "prometheus-operator"
            )
            request.session.stash[_CLUSTER] = cluster
            try:
                yield cluster
            finally:
                del request.session.stash[_CLUSTER]


def diagnose(cluster: NodeCluster) -> str:
    """What a person looks at first: nodes, pods, events, container logs, the node's logs."""
    kube = cluster.kube
    parts: list[str] = []

    def section(title: str, *args: str) -> None:
        proc = kube.kubectl(*args, check=False, timeout=60)
        parts.append(f"--- {title}\n{proc.stdout}{proc.stderr}")

    section("nodes", "get", "nodes", "-o", "wide")
    section("pods", "get", "pods", "-A", "-o", "wide")
    section("events", "get", "events", "-A", "--sort-by=.lastTimestamp")
    pods = kube.kubectl("get", "pods", "-A", "-o", "json", check=False, timeout=60)
    for pod in json.loads(pods.stdout or '{"items": []}')["items"]:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        section(f"describe {ns}/{name}", "describe", "pod", "-n", ns, name)
        for previous in ("false", "true"):
            section(f"logs {ns}/{name} (previous={previous})", "logs", "-n", ns, name,
                    "--all-containers", "--prefix", "--tail=40",
                    f"--previous={previous}")  # fmt: skip
    for component in ("kubelet", "containerd", "kube-proxy", "coredns", "traefik"):
        parts.append(f"--- {component}.log\n{cluster.node.log_tail(component, 30)}")
    return "\n".join(parts)


_CLUSTER = pytest.StashKey[NodeCluster]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    cluster = item.session.stash.get(_CLUSTER, None)
    if report.failed and cluster is not None and item.get_closest_marker("node"):
        report.sections.append(("cluster diagnostics", diagnose(cluster)))
    return report
