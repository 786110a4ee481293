"""The chart on a real node: every container, probe, script, Job and `helm test` pod executes.

One release (bundled Kafka with its claim, the topic Job, the simulator, ingest, featurizer,
consumer, two API replicas) in a namespace enforcing the `restricted` Pod Security Standard, on
images built here. The tests run in file order and share it: behaviour first (data flows, the
API answers through its Service, `helm test`), then disruptions (a killed process, an unready
pod, a rolling upgrade under load).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.infra.node import GATEWAY_CLASS, NODE_NAME, resolve
from tests.node.conftest import NodeCluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "volatility"
RELEASE = "vol"
FULLNAME = f"{RELEASE}-volatility"
STREAM = ("ingest", "featurizer", "consumer")
# Predictions per second that accompany a switch or an upgrade: a steady production-like rate.
LOAD_RATE = 100.0
# The first test also waits for the node and the install; disruptions wait on probes.
pytestmark = pytest.mark.timeout(600)


def fetch(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - a ClusterIP here
        return str(r.read().decode())


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def eventually(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})")


@dataclass
class Release:
    cluster: NodeCluster
    ns: str
    kafka_image: str
    values: list[str] = field(default_factory=list)

    def get(self, *args: str) -> Any:
        out = self.cluster.kube.kubectl("get", "-n", self.ns, *args, "-o", "json").stdout
        return json.loads(out)

    def pods(self, component: str) -> list[dict[str, Any]]:
        # Straight from the API server, not through kubectl: the switch measurements call this
        # ten times a second, and a kubectl process each time took CPU from the pods they time.
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
        query = urllib.parse.urlencode({"labelSelector": selector})
        path = f"/api/v1/namespaces/{self.ns}/pods?{query}"
        items: list[dict[str, Any]] = self.cluster.kube.plane.api("GET", path)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def model_variant(self) -> dict[str, Any]:
        """The release's ModelVariant (the chart creates it with the operator, by default)."""
        path = f"/apis/volatility.dev/v1alpha1/namespaces/{self.ns}/modelvariants/{FULLNAME}"
        obj: dict[str, Any] = self.cluster.kube.plane.api("GET", path)
        return obj

    def service_url(self, component: str, port_name: str) -> str:
        svc = self.get("service", f"{FULLNAME}-{component}")
        port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == port_name)
        return f"http://{svc['spec']['clusterIP']}:{port}"

    def metric(self, component: str, sample: str) -> float:
        """Sum of a sample over its labels, scraped through the component's Service."""
        text = fetch(self.service_url(component, "metrics") + "/metrics")
        return sum(value for _, value in samples(text, sample))


def is_ready_on(variant: str) -> Callable[[dict[str, Any]], bool]:
    """A ModelVariant that reports Ready on ``variant`` for its current spec."""

    def check(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        return bool(
            status.get("phase") == "Ready"
            and status.get("variant") == variant
            and status.get("observedGeneration") == obj["metadata"]["generation"]
        )

    return check


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def restarts(pod: dict[str, Any]) -> int:
    return sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses", []))


def node_values(node_cluster: NodeCluster) -> tuple[str, list[str]]:
    """The Kafka image built here, and the values every release on the node starts from: the
    images built here, a small Kafka volume, ingest on the in-cluster simulator."""
    images = node_cluster.node.images()
    kafka = next(i for i in images if i.startswith("localhost/volatility-kafka:"))
    repo, tag = kafka.rsplit(":", 1)
    return kafka, [
        "--set", "image.registry=localhost",
        "--set-string", f"image.tag={node_cluster.version}",
        "--set", f"kafka.image.repository={repo}",
        "--set-string", f"kafka.image.tag={tag}",
        "--set", "kafka.persistence.size=1Gi",
        "--set", "simulator.enabled=true",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def release(node_cluster: NodeCluster) -> Iterator[Release]:
    kube = node_cluster.kube
    ns = kube.namespace("vol-node", pod_security="restricted")
    kafka, base_values = node_values(node_cluster)
    rel = Release(node_cluster, ns, kafka)
    # The HTTPRoute attaches to a Gateway of the real controller (Traefik) in the namespace.
    kube.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "web"},
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "listeners": [{"name": "http", "protocol": "HTTP",
                           "port": node_cluster.gateway_port,
                           "allowedRoutes": {"namespaces": {"from": "Same"}}}],
        },
    }))  # fmt: skip
    rel.values = [
        *base_values,
        "--set", "httpRoute.enabled=true",
        "--set", "httpRoute.parentRefs[0].name=web",
        "--set", "httpRoute.parentRefs[0].sectionName=http",
    ]  # fmt: skip
    kube.helm("install", RELEASE, str(CHART), "-n", ns, *rel.values, "--wait", "--timeout=8m",
              timeout=540)  # fmt: skip
    yield rel
    kube.helm("uninstall", RELEASE, "-n", ns, "--wait", "--timeout=3m", timeout=240, check=False)


def test_every_pod_runs_on_the_real_node_under_restricted(release: Release) -> None:
    kube = release.cluster.kube
    labels = json.loads(kube.kubectl("get", "namespace", release.ns, "-o", "json").stdout)
    assert labels["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    node = json.loads(kube.kubectl("get", "node", NODE_NAME, "-o", "json").stdout)
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    for component in ("kafka", "simulator", *STREAM, "api", "operator"):
        pods = release.pods(component)
        assert pods, f"no {component} pod"
        for pod in pods:
            assert pod["spec"]["nodeName"] == NODE_NAME
            assert ready(pod), f"{pod['metadata']['name']} not Ready: {pod['status']}"
            # Init containers (`volatility kafka init`) really ran and succeeded.
            for init in pod["status"].get("initContainerStatuses", []):
                assert init["state"]["terminated"]["exitCode"] == 0, init
    assert len(release.pods("api")) == 2
    claim = release.get("pvc", f"data-{FULLNAME}-kafka-0")
    assert claim["status"]["phase"] == "Bound"


def test_service_names_resolve_through_the_cluster_dns(release: Release) -> None:
    svc = release.get("service", f"{FULLNAME}-kafka")
    assert resolve(f"{FULLNAME}-kafka.{release.ns}.svc.cluster.local") == [svc["spec"]["clusterIP"]]
    # The broker's advertised name (headless Service, the pod's own address).
    broker = release.pods("kafka")[0]
    name = f"{FULLNAME}-kafka-0.{FULLNAME}-kafka-headless.{release.ns}.svc.cluster.local"
    assert resolve(name) == [broker["status"]["podIP"]]
    assert resolve("example.com") == []  # nothing outside the cluster resolves


def test_ticks_features_and_predictions_flow_through_the_broker(release: Release) -> None:
    # The simulator's preroll gives the featurizer its 60 s warm-up at once.
    eventually(lambda: release.metric("ingest", "volatility_ticks_total") > 0, "ticks")
    eventually(
        lambda: release.metric("featurizer", "volatility_feature_vectors_total") > 0,
        "feature vectors",
    )
    eventually(
        lambda: release.metric("consumer", "volatility_predictions_total") > 0, "predictions"
    )
    assert release.metric("ingest", "volatility_feed_connected") == 1


def _predict_body(base: str) -> bytes:
    with urllib.request.urlopen(base + "/version", timeout=5) as r:  # noqa: S310
        names = json.load(r)["feature_names"]
    return json.dumps({"rows": [dict.fromkeys(names, 0.0)]}).encode()


def _post(url: str, body: bytes, timeout: float = 5.0) -> Any:
    request = urllib.request.Request(  # noqa: S310 - a ClusterIP on this machine
        url, data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as r:  # noqa: S310
        return json.load(r)


def test_api_answers_ready_and_a_prediction_through_its_service(release: Release) -> None:
    base = release.service_url("api", "http")
    with urllib.request.urlopen(base + "/ready", timeout=5) as r:  # noqa: S310
        assert json.load(r)["ready"] is True
    answer = _post(base + "/predict", _predict_body(base))
    assert answer, "empty prediction"


def test_prediction_through_the_http_route_of_a_real_gateway_controller(release: Release) -> None:
    def accepted() -> bool:
        route = release.get("httproute", f"{FULLNAME}-api")
        parents = route.get("status", {}).get("parents", [])
        conditions = {c["type"]: c["status"] for p in parents for c in p["conditions"]}
        return conditions.get("Accepted") == "True" and conditions.get("ResolvedRefs") == "True"

    eventually(accepted, "the HTTPRoute accepted by Traefik", 60)
    base = f"http://127.0.0.1:{release.cluster.gateway_port}"
    eventually(lambda: json.loads(fetch(base + "/ready"))["ready"] is True, "/ready via Traefik")
    answer = _post(base + "/predict", _predict_body(base))
    assert answer, "empty prediction"


def test_helm_test_runs_its_pod_and_passes(release: Release) -> None:
    for _ in range(2):  # a second run replaces the pod the first one left for its logs
        out = release.cluster.kube.helm("test", RELEASE, "-n", release.ns, "--timeout=3m",
                                        "--logs", timeout=240).stdout  # fmt: skip
        assert "Phase:          Succeeded" in out, out
        # The pod's own output: the prediction it got through the API's Service.
        assert "POD LOGS:" in out and '"spikes"' in out, out


def test_logs_and_exec_reach_the_containers(release: Release) -> None:
    kube = release.cluster.kube
    api = release.pods("api")[0]["metadata"]["name"]
    # The whole log, not its tail: an API pod that started before the broker was up ends with
    # a run of librdkafka's own connection errors, plain text on stderr.
    logs = kube.kubectl("logs", "-n", release.ns, api).stdout
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert lines, f"no JSON log lines from {api}:\n{logs}"
    out = kube.kubectl("exec", "-n", release.ns, api, "--", "python", "-c",
                       "import os; print(os.getuid())").stdout  # fmt: skip
    assert out.strip() == "10001"


def test_a_killed_process_is_restarted_by_the_kubelet(release: Release) -> None:
    pod = release.pods("featurizer")[0]
    name, before = pod["metadata"]["name"], restarts(pod)
    pid = release.cluster.node.container_pid(release.ns, name, "featurizer")
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        now = release.get("pod", name)
        return restarts(now) == before + 1 and ready(now)

    eventually(restarted, f"{name} restarted and Ready again")
    vectors = release.metric("featurizer", "volatility_feature_vectors_total")
    eventually(
        lambda: release.metric("featurizer", "volatility_feature_vectors_total") > vectors,
        "feature vectors after the restart",
    )


def _endpoint_ips(release: Release, ready_only: bool = True) -> set[str]:
    slices = release.get("endpointslices", "-l", f"kubernetes.io/service-name={FULLNAME}-api")
    return {
        address
        for s in slices["items"]
        for e in s.get("endpoints") or []
        if not ready_only or e.get("conditions", {}).get("ready")
        for address in e["addresses"]
    }


def test_an_unready_api_pod_leaves_the_service_endpoints(release: Release) -> None:
    pods = release.pods("api")
    pod = pods[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    assert _endpoint_ips(release) == {p["status"]["podIP"] for p in pods}
    pid = release.cluster.node.container_pid(release.ns, name, "api")
    # A frozen process answers no probe: the readiness probe must take the pod out of the
    # Service before any request is routed to it in vain.
    os.kill(pid, signal.SIGSTOP)
    try:
        eventually(lambda: ip not in _endpoint_ips(release), f"{name} out of the endpoints", 60)
        base = release.service_url("api", "http")
        body = _predict_body(base)
        for _ in range(20):  # every request now lands on the other replica
            _post(base + "/predict", body)
    finally:
        os.kill(pid, signal.SIGCONT)
    eventually(
        lambda: (
            ip in _endpoint_ips(release)
            or name not in {p["metadata"]["name"] for p in release.pods("api")}
        ),
        f"{name} back in the endpoints",
        120,
    )
    eventually(lambda: all(ready(p) for p in release.pods("api")), "both API pods Ready", 120)


class Load:
    """Predictions against the API Service at a steady ``rate`` per second, one at a time, in a
    thread; counts every outcome.

    Paced rather than as fast as the machine allows: unpaced, it sends about three times as
    many, and on two shared cores the switch it accompanies would time that contention (client
    and API pods), not the switch."""

    def __init__(self, base: str, rate: float = LOAD_RATE) -> None:
        self.base = base
        self.body = _predict_body(base)
        self.period = 1.0 / rate
        self.ok = 0
        self.failures: list[str] = []
        self.variants: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                _post(self.base + "/predict", self.body)
                self.ok += 1
            except (OSError, urllib.error.HTTPError) as e:
                self.failures.append(repr(e))
            # The load's own pacing; a slow answer delays the next request, never bunches them.
            due = max(due + self.period, time.monotonic())
            self._stop.wait(due - time.monotonic())

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_upgrade_of_the_model_variant_rolls_only_scorers_without_a_failed_request(
    release: Release,
) -> None:
    kube = release.cluster.kube
    before = {c: {p["metadata"]["uid"] for p in release.pods(c)} for c in (*STREAM, "api")}
    base = release.service_url("api", "http")
    with Load(base) as load:
        kube.helm("upgrade", RELEASE, str(CHART), "-n", release.ns, *release.values,
                  "--set", "modelVariant=ml", "--wait", "--timeout=5m", timeout=360)  # fmt: skip
        # Helm changed the release's ModelVariant; the operator (on by default) rolls the pods.
        on_ml = is_ready_on("ml")
        eventually(lambda: on_ml(release.model_variant()), "the ModelVariant Ready on ml", 180)

        # Keep sending until the old pods are gone, not only until the new ones are ready.
        def old_api_pods_gone() -> bool:
            return not {p["metadata"]["uid"] for p in release.pods("api")} & before["api"]

        eventually(old_api_pods_gone, "old API pods gone", 120)
    print(f"requests during the upgrade: {load.ok} succeeded, {len(load.failures)} failed")
    assert load.ok > 50
    assert not load.failures, load.failures[:10]
    after = {c: {p["metadata"]["uid"] for p in release.pods(c)} for c in (*STREAM, "api")}
    for component in ("consumer", "api"):
        assert not after[component] & before[component], f"{component} did not roll"
    for component in ("ingest", "featurizer"):
        assert after[component] == before[component], f"{component} rolled without reason"
    with urllib.request.urlopen(base + "/version", timeout=5) as r:  # noqa: S310
        assert json.load(r)["variant"] == "ml"

    def ml_predictions() -> bool:
        text = fetch(release.service_url("consumer", "metrics") + "/metrics")
        found = samples(text, "volatility_predictions_total")
        return any(labels.get("model_variant") == "ml" and value > 0 for labels, value in found)

    eventually(ml_predictions, "predictions of the ml variant")
