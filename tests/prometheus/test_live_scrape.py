"""The dashboards and alerts against what the services really export, scraped by a real Prometheus.

On loopback: a real Kafka broker; the real `volatility ingest`, `featurize`, `consume` and
`serve` processes. Two feeds share the ticks topic, on products of their own: the ingest takes a
live market from the exchange simulator (synthetic ticks stamped with the wall clock, real time),
and `volatility replay --to-kafka --speed max` publishes a recording whose event time is long
enough for live quality and drift (both run on event time). Debian's Prometheus is configured as
the Prometheus Operator would configure it from the chart's ServiceMonitors (same jobs and target
labels, `honor_labels`), with the chart's PrometheusRule as its rule file, and alerts Debian's
Alertmanager, which sends to a webhook this test serves. Every panel query of the committed
dashboards and every rule expression runs through Prometheus' HTTP API; then the feed stops and
the stale-feed alert must reach the webhook.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from confluent_kafka.admin import AdminClient

from tests.chart.test_chart_render import NAMESPACE, RELEASE, by_kind, render
from tests.chart.test_chart_render import helm as helm  # the fixture
from tests.conftest import SHARED_DATA
from tests.infra import prometheus as prometheus_infra
from tests.infra.alertmanager import Alertmanager, WebhookReceiver
from tests.infra.kafka_broker import KafkaBroker, TopicFactory
from tests.infra.ports import free_port
from tests.infra.prometheus import Prometheus
from tests.kafka.pipeline import VOLATILITY, Pipeline
from tests.prometheus.live import (
    EMPTY_DASHBOARD_QUERIES,
    ApiTraffic,
    assert_dashboard_queries,
    assert_rule_outcomes,
)

pytestmark = [pytest.mark.scrape, pytest.mark.kafka, pytest.mark.timeout(480)]

# 15 minutes of BTC-USD and ETH-USD: live quality needs a product's warm-up (60 s), its label
# regime (600 s) and one horizon (60 s) of event time before the first labelled prediction.
RECORDING = SHARED_DATA / "coinbase" / "20260403T221341Z_btc-eth.ndjson"
REPLAYED = ("BTC-USD", "ETH-USD")
# The live product (BTC-like synthetic dynamics: at least 1.5 ticks/s even in a quiet spell).
LIVE = "SOL-USD"
# Rendered into the rule (60 s by default): the synthetic feed is never silent this long.
FEED_STALE_SECONDS = 10
# The ServiceMonitors' interval and timeout, rendered (30 s and 10 s by default).
SCRAPE_INTERVAL = "2s"
# Messages a consumer group may be behind once the replayed burst is through (the live product
# adds a few a second).
SETTLED_LAG = 50
COMPONENTS = ("ingest", "featurizer", "consumer", "api")
INGEST = f'namespace="{NAMESPACE}", service="ingest"'

# What each alert's expression holds on this healthy pipeline: True (data), False (empty), or
# None where the replayed figures decide; and why.
ALERT_OUTCOMES: dict[str, tuple[bool | None, str]] = {
    "VolatilityTargetDown": (False, "every target is up"),
    "VolatilityApiErrorBudgetBurn": (False, "the API answers no request with a 5xx"),
    "VolatilityApiLatencyBudgetBurn": (False, "single-row requests take far less than 0.1 s"),
    "VolatilityConsumerLagHigh": (False, "the consumers keep up with a real-time feed"),
    "VolatilityModelNotLoaded": (False, "the API and the consumer serve a model"),
    "VolatilityFeedStale": (False, "the live product ticks every second or so"),
    # `volatility drift-report` on the same recording: PSI up to 5.5 (rv_300s), but the bound
    # is the drift an hour of the training sessions spans, and this is one of them: its first
    # quarter hour may or may not stray further than its hours do.
    "VolatilityFeatureDrift": (None, "a quarter hour of a training session"),
    "VolatilityLiveQualityBelowShadow": (
        None,
        "compares only figures backed by 200 labelled predictions (minLabelled); the 15 "
        "minutes replayed label about 180 per product",
    ),
    "VolatilityDeadLettersRising": (False, "nothing is set aside"),
    "VolatilityLateTicksDropped": (False, "ticks published in order are never late"),
}


def eventually(
    condition: Callable[[], bool], timeout: float, what: str, why: Callable[[], str]
) -> float:
    """Poll ``condition`` until true; return the seconds it took, else fail saying why."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{why()}")
        time.sleep(0.25)  # polling interval of a deadline-bounded wait
    return time.monotonic() - started


def scrape_configs(docs: list[dict[str, Any]], ports: dict[str, int]) -> list[dict[str, Any]]:
    """What the Prometheus Operator makes of each ServiceMonitor, with our processes as the
    endpoints: job and service are the Service's name, plus namespace, pod, container and
    endpoint (the port's name) as target labels, and the monitor's own scrape settings."""
    services = by_kind(docs, "Service")
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    configs = []
    for name, monitor in by_kind(docs, "ServiceMonitor").items():
        match = monitor["spec"]["selector"]["matchLabels"]
        (svc,) = [s for s in services.values() if match.items() <= s["metadata"]["labels"].items()]
        (endpoint,) = monitor["spec"]["endpoints"]
        (port,) = [p for p in svc["spec"]["ports"] if p["name"] == endpoint["port"]]
        (workload,) = [
            w
            for w in workloads
            if svc["spec"]["selector"].items()
            <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        (container,) = [
            c["name"]
            for c in workload["spec"]["template"]["spec"]["containers"]
            if any(p.get("name") == port["targetPort"] for p in c.get("ports", []))
        ]
        component = match["app.kubernetes.io/component"]
        labels = {
            "job": svc["metadata"]["name"],
            "namespace": NAMESPACE,
            "service": svc["metadata"]["name"],
            "pod": f"{workload['metadata']['name']}-0",
            "container": container,
            "endpoint": endpoint["port"],
        }
        configs.append(
            {
                "job_name": f"serviceMonitor/{NAMESPACE}/{name}/0",
                "honor_labels": endpoint["honorLabels"],
                "metrics_path": endpoint["path"],
                "scrape_interval": endpoint["interval"],
                "scrape_timeout": endpoint["scrapeTimeout"],
                "static_configs": [
                    {"targets": [f"127.0.0.1:{ports[component]}"], "labels": labels}
                ],
            }
        )
    return configs


@dataclass
class Stack:
    prometheus: Prometheus
    alertmanager: Alertmanager
    webhook: WebhookReceiver
    pipeline: Pipeline
    simulator: subprocess.Popen[bytes]
    api: subprocess.Popen[bytes]
    traffic: ApiTraffic
    rules: list[dict[str, Any]]

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.prometheus.query(expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def diagnostics(self) -> str:
        logs = "\n".join(f"--- {s.name}:\n{s.log_text()[-2000:]}" for s in self.pipeline.services)
        scrapes = {
            s["metric"]["job"]: s["value"][1]
            for s in self.query(f'scrape_duration_seconds{{namespace="{NAMESPACE}"}}')
        }
        return (
            f"scrape durations: {scrapes}\n"
            f"{logs}\n--- prometheus:\n{self.prometheus.log_tail()}"
            f"\n--- alertmanager:\n{self.alertmanager.log_tail()}"
        )


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310
            return bool(r.status == 200)
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def stack(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not RECORDING.exists():
        pytest.fail(f"{RECORDING} is missing: ../shared must sit beside the repo")
    workdir = tmp_path_factory.mktemp("scrape")
    bin_dir = prometheus_infra.provision()
    docs = render(
        helm,
        "--api-versions",
        "monitoring.coreos.com/v1",
        "--set",
        f"monitoring.serviceMonitors.interval={SCRAPE_INTERVAL}",
        "--set",
        f"monitoring.serviceMonitors.scrapeTimeout={SCRAPE_INTERVAL}",
        "--set",
        f"monitoring.prometheusRule.feedStaleSeconds={FEED_STALE_SECONDS}",
    )
    (rule,) = by_kind(docs, "PrometheusRule").values()
    groups = rule["spec"]["groups"]
    rule_file = workdir / "rules.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": groups}))

    with contextlib.ExitStack() as cleanup:
        broker = cleanup.enter_context(KafkaBroker())
        topics = TopicFactory(
            AdminClient({"bootstrap.servers": broker.bootstrap_servers}), "scrape"
        )
        pipeline = Pipeline.create(broker, topics, workdir)
        cleanup.callback(topics.delete_all)
        cleanup.callback(pipeline.close)

        products = ",".join((*REPLAYED, LIVE))
        featurizer = pipeline.start("featurize", FEATURIZER_PRODUCTS=products)
        consumer = pipeline.start("consume", CONSUMER_PRODUCTS=products)
        replay = pipeline.replay([RECORDING], speed="max")
        cleanup.callback(_stop, replay)

        sim_port = free_port()
        simulator = subprocess.Popen(
            [
                *(str(VOLATILITY), "simulate", "--synthetic", "--products", LIVE),
                *("--port", str(sim_port), "--quiet"),
            ],
            stdout=(workdir / "simulate.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        cleanup.callback(_stop, simulator)
        eventually(
            lambda: _listening(sim_port) or simulator.poll() is not None,
            60,
            "the simulator to listen",
            lambda: (workdir / "simulate.log").read_text(),
        )
        assert simulator.poll() is None, (workdir / "simulate.log").read_text()
        ingest = pipeline.start(
            "ingest", INGEST_WS_URL=f"ws://127.0.0.1:{sim_port}", INGEST_PRODUCTS=LIVE
        )
        _, replay_err = replay.communicate(timeout=180)
        assert replay.returncode == 0, replay_err.decode(errors="replace")
        api_port = free_port()
        api = subprocess.Popen(
            [str(VOLATILITY), "serve", "--port", str(api_port), "--predictions", "kafka"],
            env=pipeline.env(),
            stdout=(workdir / "serve.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        cleanup.callback(_stop, api)
        api_url = f"http://127.0.0.1:{api_port}"
        eventually(
            lambda: _ready(f"{api_url}/ready") or api.poll() is not None,
            90,
            "the API to be ready",
            lambda: (workdir / "serve.log").read_text(),
        )
        assert api.poll() is None, (workdir / "serve.log").read_text()
        with urllib.request.urlopen(f"{api_url}/version", timeout=10) as r:  # noqa: S310
            traffic = ApiTraffic(api_url, json.load(r)["feature_names"])
        cleanup.callback(traffic.close)

        webhook = WebhookReceiver()
        cleanup.callback(webhook.close)
        alertmanager = cleanup.enter_context(Alertmanager(bin_dir, webhook.url))
        ports = {
            "ingest": ingest.metrics_port,
            "featurizer": featurizer.metrics_port,
            "consumer": consumer.metrics_port,
            "api": api_port,
        }
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "1s"},
            "rule_files": [str(rule_file)],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [alertmanager.address]}]}]
            },
            "scrape_configs": scrape_configs(docs, ports),
        }
        server = cleanup.enter_context(
            Prometheus(bin_dir, [], config=lambda _: yaml.safe_dump(config))
        )
        yield Stack(
            server,
            alertmanager,
            webhook,
            pipeline,
            simulator,
            api,
            traffic,
            [r for g in groups for r in g["rules"]],
        )


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def warm(stack: Stack) -> Stack:
    """Until the consumer publishes live quality and drift for both products and variants."""
    sel = f'namespace="{NAMESPACE}"'

    def live() -> bool:
        labelled = stack.query(f"volatility_live_labelled{{{sel}}} > 0")
        psi = stack.query(f"count by (product) (volatility_feature_psi{{{sel}}})")
        # Every rate window needs two scrapes of the API's counters and of the live product's
        # predictions (its first vector comes after its 60 s warm-up).
        api = stack.query(f"sum(rate(volatility_http_requests_total{{{sel}}}[1m])) > 0")
        ticks = stack.query(
            f'sum(rate(volatility_predictions_total{{{sel}, product="{LIVE}"}}[1m])) > 0'
        )
        up = stack.query(f"up{{{sel}}} == 1")
        # Both consumer groups are through the replayed burst.
        settled = stack.query(f"max by (group) (volatility_consumer_lag{{{sel}}}) < {SETTLED_LAG}")
        return (
            {s["metric"]["product"] for s in labelled} == set(REPLAYED)
            and len(labelled) == 2 * len(REPLAYED)
            and {s["metric"]["product"] for s in psi} == set(REPLAYED)
            and bool(api)
            and bool(ticks)
            and len(up) == len(COMPONENTS)
            and len(settled) == 2
        )

    took = eventually(live, 240, "live quality and drift in Prometheus", stack.diagnostics)
    labelled = {
        f"{s['metric']['product']}/{s['metric']['role']}": s["value"][1]
        for s in stack.query(f"volatility_live_labelled{{{sel}}}")
    }
    print(f"\nlive quality and drift in Prometheus after {took:.0f}s; labelled: {labelled}")
    return stack


def test_each_service_monitor_target_is_up(stack: Stack) -> None:
    jobs = {f"{RELEASE}-volatility-{c}" for c in COMPONENTS}

    def all_up() -> bool:
        up = stack.query(f'up{{namespace="{NAMESPACE}"}} == 1')
        return {s["metric"]["job"] for s in up} == jobs

    eventually(all_up, 60, f"up == 1 for {sorted(jobs)}", stack.diagnostics)


def _values(result: list[dict[str, Any]]) -> list[float]:
    return [float(s["value"][1]) for s in result]


def _epoch(rfc3339: str) -> float:
    """Alertmanager's timestamps (RFC 3339, up to nanoseconds) as Unix seconds."""
    whole, _, rest = rfc3339.rstrip("Z").partition(".")
    fraction = float(f"0.{rest}") if rest else 0.0
    return datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp() + fraction


def test_every_dashboard_query_returns_data(warm: Stack) -> None:
    assert_dashboard_queries(
        warm.query,
        NAMESPACE,
        lambda expr: any(metric in expr for metric in EMPTY_DASHBOARD_QUERIES),
        warm.diagnostics,
    )


def test_every_rule_evaluates_on_live_series(warm: Stack) -> None:
    """Recording rules hold data; alert expressions run and are silent on a healthy pipeline."""
    assert_rule_outcomes(warm.query, warm.rules, ALERT_OUTCOMES)
    firing = warm.query(f'ALERTS{{namespace="{NAMESPACE}", alertstate="firing"}}')
    unexpected = [a for a in firing if ALERT_OUTCOMES[a["metric"]["alertname"]][0] is not None]
    assert not unexpected, f"firing on a healthy pipeline: {unexpected}"


# A vector selector of a rendered rule: a metric or recorded series name and its matchers.
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^{}]*)\}")
# Selectors that match nothing on a healthy pipeline: no 5xx answer, no dead letter.
EMPTY_SELECTORS = ('status=~"5.."', "volatility_deadletters_total")


def test_every_rule_selector_matches_live_series(warm: Stack) -> None:
    """A silent alert proves little if its selectors match nothing: each selector of each rule
    (job names, `service`, `role`, `pod` joins...) must select series the services export."""
    unmatched = []
    for rule in warm.rules:
        for name, matchers in SELECTOR.findall(rule["expr"]):
            selector = f"{name}{{{matchers}}}"
            if any(e in selector for e in EMPTY_SELECTORS):
                continue
            if not warm.query(selector):
                unmatched.append(f"{rule.get('alert') or rule['record']}: {selector}")
    assert not unmatched, "selectors matching no live series:\n" + "\n".join(unmatched)


def test_a_stale_feed_reaches_alertmanager(warm: Stack) -> None:
    """The exchange goes away: the ingest keeps running (reconnecting) but takes no tick, and
    the stale-feed alert reaches the webhook through Alertmanager."""
    assert not [
        a for a in warm.webhook.alerts() if a["labels"]["alertname"] == "VolatilityFeedStale"
    ], "the feed was stale before it stopped"
    stopped = time.monotonic()
    _stop(warm.simulator)

    def notified() -> bool:
        return any(a["labels"]["alertname"] == "VolatilityFeedStale" for a in warm.webhook.alerts())

    eventually(notified, 120, "VolatilityFeedStale at the webhook", warm.diagnostics)
    took = time.monotonic() - stopped
    (alert,) = [
        a for a in warm.webhook.alerts() if a["labels"]["alertname"] == "VolatilityFeedStale"
    ]
    print(f"\nVolatilityFeedStale at the webhook {took:.1f}s after the feed stopped")
    assert alert["status"] == "firing"
    assert alert["labels"]["namespace"] == NAMESPACE
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["runbook_url"] == "docs/runbook.md#volatilityfeedstale"
    # Prometheus' clock against the newest tick the ingest took: stale for the rule's seconds.
    (last,) = _values(warm.query(f"max(volatility_last_event_time_seconds{{{INGEST}}})"))
    assert _epoch(alert["startsAt"]) - last >= FEED_STALE_SECONDS, (alert, last)
    # The ingest stayed up: the alert is about the feed, not a dead process.
    assert warm.pipeline.services[2].proc.poll() is None
