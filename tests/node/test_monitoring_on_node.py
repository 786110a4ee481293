"""The ServiceMonitor path on a real node: the real Prometheus Operator turns the chart's
ServiceMonitors and PrometheusRule into Prometheus' configuration, and the Prometheus and
Alertmanager it runs in pods scrape, evaluate and notify.

The operator and its config reloader are built from their Go module, Prometheus and
Alertmanager are Debian's (provision-node.sh); the CRDs and the operator's RBAC are the ones
its module ships. The chart detects `monitoring.coreos.com/v1` and renders its monitors and
rules on its own. Every dashboard panel's query and every rule expression then runs against
that Prometheus, and a stopped feed must reach a webhook this test serves on the node's
address through the Alertmanager pod.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.infra.alertmanager import WebhookReceiver
from tests.infra.controlplane import Kube
from tests.infra.node import NODE_IP
from tests.node.conftest import NodeCluster
from tests.node.test_chart_on_node import CHART, FULLNAME, RELEASE, node_values, ready
from tests.prometheus.live import (
    EMPTY_DASHBOARD_QUERIES,
    ApiTraffic,
    assert_dashboard_queries,
    assert_rule_outcomes,
)

pytestmark = pytest.mark.timeout(600)

MONITORING_NS = "monitoring"
COMPONENTS = ("ingest", "featurizer", "consumer", "api")
API_REPLICAS = 2
SCRAPE_INTERVAL = "2s"
FEED_STALE_SECONDS = 10
# Live quality needs a product's label regime (600 s) and one horizon (60 s) of event time
# before its first labelled prediction, and drift 600 vectors (10 minutes) per product: a feed
# that started minutes ago has neither. The loopback scrape tier
# (tests/prometheus/test_live_scrape.py) replays a recording long enough for both.
YOUNG_FEED = ("volatility_live_", "volatility:live_quality", "volatility_feature_psi")
# What each alert's expression holds on this healthy release fed by the in-cluster simulator:
# True (data), False (empty), or None where the feed's age decides; and why.
ALERT_OUTCOMES: dict[str, tuple[bool | None, str]] = {
    "VolatilityTargetDown": (False, "every target is up"),
    "VolatilityApiErrorBudgetBurn": (False, "the API answers no request with a 5xx"),
    "VolatilityApiLatencyBudgetBurn": (None, "two cores shared with the whole cluster"),
    "VolatilityConsumerLagHigh": (False, "the consumers keep up with a real-time feed"),
    "VolatilityModelNotLoaded": (False, "the API and the consumer serve a model"),
    "VolatilityFeedStale": (False, "the simulator ticks every second or so"),
    "VolatilityFeatureDrift": (False, "no PSI before 600 vectors of a product"),
    "VolatilityLiveQualityBelowShadow": (False, "no figure has 200 labels on a young feed"),
    "VolatilityDeadLettersRising": (False, "nothing is set aside"),
    "VolatilityLateTicksDropped": (False, "ticks published in order are never late"),
}


def eventually(
    check: Callable[[], bool], what: str, timeout: float, why: Callable[[], str]
) -> float:
    started = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(0.5)  # polling interval of a deadline-bounded wait
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})\n{why()}"
    )


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for f in sorted(path.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def _apply(kube: Kube, *docs: dict[str, Any]) -> None:
    kube.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                     "items": list(docs)}))  # fmt: skip


@dataclass
class Monitoring:
    cluster: NodeCluster
    ns: str  # the release's namespace
    webhook: WebhookReceiver
    rules: list[dict[str, Any]]  # the PrometheusRule as the cluster holds it

    @property
    def kube(self) -> Kube:
        return self.cluster.kube

    def prometheus_url(self) -> str:
        (pod,) = self.pods(MONITORING_NS, "app.kubernetes.io/name=prometheus")
        return f"http://{pod['status']['podIP']}:9090"

    def pods(self, ns: str, selector: str) -> list[dict[str, Any]]:
        out = self.kube.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json").stdout
        return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.prometheus_url()}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - a pod on this node
            answer = json.load(r)
        assert answer["status"] == "success", f"{path} {params}: {answer}"
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def diagnostics(self) -> str:
        parts = []
        for ns in (MONITORING_NS, self.ns):
            pods = self.kube.kubectl("get", "pods", "-n", ns, "-o", "wide", check=False)
            parts.append(f"--- pods in {ns}\n{pods.stdout}{pods.stderr}")
        for selector in ("app.kubernetes.io/name=prometheus-operator",
                         "app.kubernetes.io/name=prometheus",
                         "app.kubernetes.io/name=alertmanager"):  # fmt: skip
            logs = self.kube.kubectl("logs", "-n", MONITORING_NS, "-l", selector,
                                     "--all-containers", "--tail=30", check=False)  # fmt: skip
            parts.append(f"--- logs {selector}\n{logs.stdout}{logs.stderr}")
        with contextlib.suppress(Exception):
            targets = self.api("targets")["activeTargets"]
            parts.append("--- targets\n" + "\n".join(
                f"{t['labels'].get('job')} {t['scrapeUrl']} {t['health']} {t['lastError']}"
                for t in targets
            ))  # fmt: skip
        return "\n".join(parts)


def _install_operator(cluster: NodeCluster) -> dict[str, str]:
    """The CRDs, the operator (its module's Deployment and RBAC, our images), a Prometheus
    selecting every ServiceMonitor and PrometheusRule, and an Alertmanager."""
    kube, shipped = cluster.kube, cluster.monitoring
    images: dict[str, str] = json.loads((shipped / "images.json").read_text())
    # The CRDs are too large for client-side apply's annotation.
    kube.kubectl("apply", "--server-side", "-f", str(shipped / "crds"))
    crds = [f"crd/{c}.monitoring.coreos.com" for c in
            ("servicemonitors", "prometheusrules", "prometheuses", "alertmanagers")]  # fmt: skip

    def established() -> bool:
        # `kubectl wait --for=condition` fails outright while a new CRD has no conditions yet.
        out = kube.kubectl("get", *crds, "-o", "json").stdout
        return all(
            any(c["type"] == "Established" and c["status"] == "True"
                for c in (item.get("status") or {}).get("conditions") or [])
            for item in json.loads(out)["items"]
        )  # fmt: skip

    eventually(established, "the monitoring CRDs to be established", 60, lambda: "")
    kube.kubectl("create", "namespace", MONITORING_NS)
    kube.kubectl("wait", "--for=create", "serviceaccount/default", "-n", MONITORING_NS,
                 "--timeout=60s")  # fmt: skip
    docs = _docs(shipped / "rbac") + _docs(shipped / "prometheus-rbac")
    for doc in docs:
        if doc["kind"] in ("ServiceAccount", "Deployment", "Service"):
            doc["metadata"]["namespace"] = MONITORING_NS
        for subject in doc.get("subjects", []):
            subject["namespace"] = MONITORING_NS
        if doc["kind"] == "Deployment":
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            container["image"] = images["operator"]
            container["args"] = [
                a for a in container["args"] if not a.startswith("--prometheus-config-reloader=")
            ] + [f"--prometheus-config-reloader={images['reloader']}"]
    # The module's example Prometheus and the operator's own ServiceMonitor are replaced below.
    _apply(kube, *[d for d in docs if d["kind"] not in ("Prometheus", "ServiceMonitor")])
    kube.kubectl("rollout", "status", "-n", MONITORING_NS, "deployment/prometheus-operator",
                 "--timeout=180s", timeout=200)  # fmt: skip
    version = images["prometheus"].rsplit(":", 1)[1]
    am_version = images["alertmanager"].rsplit(":", 1)[1]
    small = {"requests": {"cpu": "50m", "memory": "64Mi"}}
    everything: dict[str, Any] = {}
    _apply(kube, {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"name": "k8s", "namespace": MONITORING_NS},
        "spec": {
            "image": images["prometheus"], "version": version, "replicas": 1,
            "serviceAccountName": "prometheus", "resources": small,
            "serviceMonitorSelector": everything, "serviceMonitorNamespaceSelector": everything,
            "ruleSelector": everything, "ruleNamespaceSelector": everything,
            "evaluationInterval": "1s", "scrapeInterval": SCRAPE_INTERVAL,
            "alerting": {"alertmanagers": [
                {"namespace": MONITORING_NS, "name": "alertmanager-operated", "port": "web",
                 "apiVersion": "v2"},
            ]},
        },
    }, {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Alertmanager",
        "metadata": {"name": "main", "namespace": MONITORING_NS},
        "spec": {"image": images["alertmanager"], "version": am_version, "replicas": 1,
                 "resources": small},
    })  # fmt: skip
    return images


def _alertmanager_config(webhook_url: str) -> dict[str, Any]:
    config = {
        "route": {"receiver": "webhook", "group_by": ["alertname"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "webhook",
                       "webhook_configs": [{"url": webhook_url, "send_resolved": False}]}],
    }  # fmt: skip
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "alertmanager-main", "namespace": MONITORING_NS},
        "stringData": {"alertmanager.yaml": yaml.safe_dump(config)},
    }  # fmt: skip


@pytest.fixture(scope="module")
def monitoring(node_cluster: NodeCluster) -> Iterator[Monitoring]:
    kube = node_cluster.kube
    webhook = WebhookReceiver(host=NODE_IP)  # the node's bridge address: pods reach it
    try:
        _install_operator(node_cluster)
        _apply(kube, _alertmanager_config(webhook.url))
        ns = kube.namespace("vol-mon", pod_security="restricted")
        _, values = node_values(node_cluster)
        kube.helm("install", RELEASE, str(CHART), "-n", ns, *values,
                  "--set", f"api.replicaCount={API_REPLICAS}",
                  "--set", f"monitoring.serviceMonitors.interval={SCRAPE_INTERVAL}",
                  "--set", f"monitoring.serviceMonitors.scrapeTimeout={SCRAPE_INTERVAL}",
                  "--set", f"monitoring.prometheusRule.feedStaleSeconds={FEED_STALE_SECONDS}",
                  "--wait", "--timeout=8m", timeout=540)  # fmt: skip
        rule = json.loads(kube.kubectl("get", "prometheusrule", "-n", ns, "-o", "json").stdout)
        (item,) = rule["items"]
        rules = [r for g in item["spec"]["groups"] for r in g["rules"]]
        mon = Monitoring(node_cluster, ns, webhook, rules)
        eventually(
            lambda: all(ready(p) for p in mon.pods(MONITORING_NS, "app.kubernetes.io/name in "
                                                   "(prometheus,alertmanager)"))
            and len(mon.pods(MONITORING_NS, "app.kubernetes.io/name in "
                                            "(prometheus,alertmanager)")) == 2,
            "the Prometheus and Alertmanager pods the operator runs to be Ready", 300,
            mon.diagnostics,
        )  # fmt: skip
        yield mon
        kube.helm("uninstall", RELEASE, "-n", ns, "--wait", "--timeout=3m", timeout=240,
                  check=False)  # fmt: skip
    finally:
        webhook.close()
        for kind in ("prometheus/k8s", "alertmanager/main"):
            kube.kubectl("delete", "-n", MONITORING_NS, kind, "--wait", "--timeout=120s",
                         check=False, timeout=150)  # fmt: skip
        kube.kubectl("delete", "namespace", MONITORING_NS, "--wait", "--timeout=120s",
                     check=False, timeout=150)  # fmt: skip


def _api_url(mon: Monitoring) -> str:
    svc = json.loads(mon.kube.kubectl("get", "service", "-n", mon.ns, f"{FULLNAME}-api",
                                      "-o", "json").stdout)  # fmt: skip
    port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "http")
    return f"http://{svc['spec']['clusterIP']}:{port}"


@pytest.fixture(scope="module")
def warm(monitoring: Monitoring) -> Iterator[Monitoring]:
    """Paced requests through the API's Service, until every target is up and every rate
    window holds two scrapes of the requests and of the predictions."""
    base = _api_url(monitoring)
    with urllib.request.urlopen(base + "/version", timeout=10) as r:  # noqa: S310
        traffic = ApiTraffic(base, json.load(r)["feature_names"])
    sel = f'namespace="{monitoring.ns}"'
    try:

        def live() -> bool:
            up = monitoring.query(f"up{{{sel}}} == 1")
            api = monitoring.query(f"sum(rate(volatility_http_requests_total{{{sel}}}[1m])) > 0")
            predictions = monitoring.query(
                f"sum(rate(volatility_predictions_total{{{sel}}}[1m])) > 0"
            )
            return len(up) == len(COMPONENTS) - 1 + API_REPLICAS and bool(api) and bool(predictions)

        took = eventually(live, "every target up, requests and predictions in Prometheus", 240,
                          monitoring.diagnostics)  # fmt: skip
        print(f"\nevery target up and rates live {took:.0f}s after the pods were Ready")
        yield monitoring
    finally:
        traffic.close()
    assert not [s for s in traffic.statuses if s >= 500 or s == 0], "failed requests"


def test_the_operator_makes_a_scrape_job_of_each_service_monitor(warm: Monitoring) -> None:
    """One job per ServiceMonitor, named after its Service, with a target per pod, labelled
    the way the dashboards and rules select (namespace, service, pod, container, endpoint)."""
    monitors = json.loads(warm.kube.kubectl("get", "servicemonitor", "-n", warm.ns,
                                            "-o", "json").stdout)["items"]  # fmt: skip
    assert {m["metadata"]["name"] for m in monitors} == {f"{FULLNAME}-{c}" for c in COMPONENTS}
    config = yaml.safe_load(warm.api("status/config")["yaml"])
    jobs = {c["job_name"] for c in config["scrape_configs"]}
    assert {f"serviceMonitor/{warm.ns}/{m['metadata']['name']}/0" for m in monitors} <= jobs
    up = warm.query(f'up{{namespace="{warm.ns}"}}')
    by_job: dict[str, list[dict[str, str]]] = {}
    for s in up:
        by_job.setdefault(s["metric"]["job"], []).append(s["metric"])
        assert s["value"][1] == "1", s
    assert {j: len(t) for j, t in by_job.items()} == {
        f"{FULLNAME}-{c}": (API_REPLICAS if c == "api" else 1) for c in COMPONENTS
    }
    for job, targets in by_job.items():
        component = job.removeprefix(f"{FULLNAME}-")
        pods = {p["metadata"]["name"] for p in warm.pods(
            warm.ns, f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
        )}  # fmt: skip
        assert {t["pod"] for t in targets} == pods
        for t in targets:
            assert t["service"] == job and t["namespace"] == warm.ns, t
            assert t["container"] and t["endpoint"], t


def test_the_prometheus_rule_is_loaded_with_every_rule(warm: Monitoring) -> None:
    groups = warm.api("rules")["groups"]
    loaded = {r["name"] for g in groups if warm.ns in g["file"] for r in g["rules"]}
    expected = {r.get("alert") or r["record"] for r in warm.rules}
    assert loaded == expected
    unhealthy = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"]
                 if r.get("health") not in ("ok", "unknown") and warm.ns in g["file"]]  # fmt: skip
    assert not unhealthy, unhealthy


def _expected_empty(expr: str) -> bool:
    return any(m in expr for m in (*EMPTY_DASHBOARD_QUERIES, *YOUNG_FEED))


def test_every_dashboard_query_runs_against_the_operators_prometheus(warm: Monitoring) -> None:
    assert_dashboard_queries(warm.query, warm.ns, _expected_empty, warm.diagnostics)


def test_every_rule_expression_runs_against_the_operators_prometheus(warm: Monitoring) -> None:
    assert_rule_outcomes(warm.query, warm.rules, ALERT_OUTCOMES, record_empty=_expected_empty)


def test_a_stopped_feed_reaches_the_webhook_through_the_alertmanager_pod(
    warm: Monitoring,
) -> None:
    """The in-cluster exchange goes away: the ingest stays up but takes no tick, and the
    stale-feed alert goes from the operator's Prometheus through its Alertmanager."""
    stale = [a for a in warm.webhook.alerts() if a["labels"]["alertname"] == "VolatilityFeedStale"]
    assert not stale, "the feed was stale before it stopped"
    stopped = time.monotonic()
    warm.kube.kubectl("scale", "-n", warm.ns, f"deployment/{FULLNAME}-simulator", "--replicas=0")

    def notified() -> bool:
        return any(a["labels"]["alertname"] == "VolatilityFeedStale" for a in warm.webhook.alerts())

    eventually(notified, "VolatilityFeedStale at the webhook", 180, warm.diagnostics)
    print(f"\nVolatilityFeedStale at the webhook {time.monotonic() - stopped:.1f}s after the "
          "simulator was scaled to zero")  # fmt: skip
    (alert,) = [
        a for a in warm.webhook.alerts() if a["labels"]["alertname"] == "VolatilityFeedStale"
    ]
    assert alert["status"] == "firing"
    assert alert["labels"]["namespace"] == warm.ns
    assert alert["labels"]["severity"] == "critical"
    (ingest,) = warm.pods(warm.ns, f"app.kubernetes.io/instance={RELEASE},"
                                   "app.kubernetes.io/component=ingest")  # fmt: skip
    assert ready(ingest), "the alert is about the feed, not a dead ingest"
