"""The Helm chart, checked with the real helm binary and no cluster.

Every ci/*.yaml scenario must lint strictly and render into the objects it promises; every pod
must pass the `restricted` Pod Security Standard; selectors must stay upgrade-safe; and bad
values must be refused with a message that names the offending key.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "volatility"
SCENARIOS = sorted((CHART / "ci").glob("*.yaml"))
KUBE_VERSION = "1.34.0"
RELEASE = "vol"
NAMESPACE = "volatility"
PROJECT_COMPONENTS = ("ingest", "featurizer", "consumer", "api")
SELECTOR_KEYS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
}
STANDARD_LABELS = SELECTOR_KEYS | {
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
}
# Volume types the restricted Pod Security Standard allows.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}

Manifest = dict[str, Any]


@pytest.fixture(scope="session")
def helm() -> str:
    proc = subprocess.run(
        ["bash", str(REPO / "tests" / "infra" / "provision-tools.sh")],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(Path(proc.stdout.strip().splitlines()[-1]) / "helm")


def _helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)


def render(helm: str, *args: str) -> list[Manifest]:
    proc = _helm(
        helm,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        *args,
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def render_error(helm: str, *args: str) -> str:
    proc = _helm(helm, "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION, *args)
    assert proc.returncode != 0, "helm template accepted values it should refuse"
    return proc.stderr


def kinds(docs: list[Manifest]) -> Counter[str]:
    return Counter(doc["kind"] for doc in docs)


def by_kind(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def component(doc: Manifest) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def pod_specs(docs: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in {"Deployment", "StatefulSet", "Job"}:
            yield name, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield name, doc["spec"]


def env_of(container: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def scenario_id(path: Path) -> str:
    return path.stem


@pytest.fixture(scope="module", params=SCENARIOS, ids=scenario_id)
def scenario(request: pytest.FixtureRequest, helm: str) -> tuple[Path, list[Manifest]]:
    path: Path = request.param
    return path, render(helm, "-f", str(path))


def test_every_scenario_is_documented_and_there_are_six() -> None:
    names = {p.stem for p in SCENARIOS}
    assert len(names) >= 6, names
    for path in SCENARIOS:
        first = path.read_text().splitlines()[0]
        assert first.startswith("## Test case: "), f"{path.name} starts with {first!r}"


@pytest.mark.parametrize("values", SCENARIOS, ids=scenario_id)
def test_lint_strict(helm: str, values: Path) -> None:
    proc = _helm(
        helm, "lint", "--strict", str(CHART), "-f", str(values), "--kube-version", KUBE_VERSION
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_default_render_has_every_component(helm: str) -> None:
    docs = render(helm)
    got = kinds(docs)
    assert got["Deployment"] == 5  # the four services and the ModelVariant operator
    assert got["StatefulSet"] == 1
    assert got["Job"] == 1
    assert got["PodDisruptionBudget"] == 4
    assert got["NetworkPolicy"] == 7
    assert got["ServiceAccount"] == 2
    assert got["Role"] == got["RoleBinding"] == 2
    assert got["ModelVariant"] == 1
    assert got["Pod"] == 1  # the `helm test` hook
    # ingest, featurizer, consumer, api + Kafka headless and client Services
    assert got["Service"] == 6
    for absent in ("Ingress", "HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule"):
        assert got[absent] == 0, absent
    deployments = {component(d) for d in by_kind(docs, "Deployment").values()}
    assert deployments == {*PROJECT_COMPONENTS, "operator"}


def test_every_resource_carries_the_standard_labels(scenario: tuple[Path, list[Manifest]]) -> None:
    _, docs = scenario
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        missing = STANDARD_LABELS - labels.keys()
        assert not missing, f"{doc['kind']}/{doc['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/part-of"] == "volatility"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_selectors_never_carry_version_or_chart(scenario: tuple[Path, list[Manifest]]) -> None:
    _, docs = scenario
    seen = 0
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        selectors: list[dict[str, str]] = []
        if doc["kind"] in {"Deployment", "StatefulSet", "PodDisruptionBudget"}:
            selectors.append(doc["spec"]["selector"]["matchLabels"])
        if doc["kind"] == "Service" and "selector" in doc["spec"]:
            selectors.append(doc["spec"]["selector"])
        if doc["kind"] == "NetworkPolicy":
            selectors.append(doc["spec"]["podSelector"]["matchLabels"])
        if doc["kind"] == "ServiceMonitor":
            selectors.append(doc["spec"]["selector"]["matchLabels"])
        for selector in selectors:
            seen += 1
            assert set(selector) == SELECTOR_KEYS, f"{where}: {sorted(selector)}"
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            template_labels = doc["spec"]["template"]["metadata"]["labels"]
            selector = doc["spec"]["selector"]["matchLabels"]
            assert selector.items() <= template_labels.items(), where
    assert seen > 10


def test_every_pod_passes_restricted_pod_security(scenario: tuple[Path, list[Manifest]]) -> None:
    _, docs = scenario
    specs = list(pod_specs(docs))
    assert specs
    for where, spec in specs:
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True, where
        assert pod_ctx["runAsUser"] == 10001, where
        assert pod_ctx["seccompProfile"]["type"] == "RuntimeDefault", where
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), f"{where}: {flag}"
        assert spec["automountServiceAccountToken"] is False, where
        for volume in spec.get("volumes", []):
            kind = (volume.keys() - {"name"}).pop()
            assert kind in RESTRICTED_VOLUME_TYPES, f"{where}: volume {volume['name']} is {kind}"
        for container in spec.get("initContainers", []) + spec["containers"]:
            cwhere = f"{where} container {container['name']}"
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, cwhere
            assert ctx["readOnlyRootFilesystem"] is True, cwhere
            assert ctx["capabilities"]["drop"] == ["ALL"], cwhere
            assert not ctx["capabilities"].get("add"), cwhere
            assert not ctx.get("privileged"), cwhere
            assert ctx.get("runAsUser", 10001) != 0, cwhere
            assert all("hostPort" not in p for p in container.get("ports", [])), cwhere
            assert container["resources"]["requests"], f"{cwhere}: no resource requests"
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{cwhere}: read-only root and no writable /tmp"


def test_long_running_containers_have_probes_and_config_checksum(
    scenario: tuple[Path, list[Manifest]],
) -> None:
    _, docs = scenario
    for doc in docs:
        if doc["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        template = doc["spec"]["template"]
        assert re.fullmatch(
            r"[0-9a-f]{64}", template["metadata"]["annotations"]["checksum/config"]
        ), doc["metadata"]["name"]
        for container in template["spec"]["containers"]:
            assert "livenessProbe" in container, container["name"]
            assert "readinessProbe" in container, container["name"]


def test_project_containers_run_real_volatility_subcommands(helm: str) -> None:
    from volatility.cli import COMMANDS, build_parser

    names = {command.name for command in COMMANDS}
    parser = build_parser()
    docs = render(helm)
    checked = 0
    for _, spec in pod_specs(docs):
        for container in spec.get("initContainers", []) + spec["containers"]:
            if not container["image"].startswith("volatility-") or "command" in container:
                continue
            args = [str(a) for a in container["args"]]
            assert args[0] in names, f"{container['name']}: `volatility {args[0]}` does not exist"
            parser.parse_args(args)  # exits (fails the test) on unknown options
            checked += 1
    assert checked >= 5  # 4 services, the topics Job


def test_stream_services_create_their_topics_in_process_not_in_init_containers(
    helm: str,
) -> None:
    """A rolled consumer pod starts one process: the topics come from the service itself."""
    streams = ("ingest", "featurizer", "consumer")
    off = render(helm, "--set", "kafka.topics.createOnStart=false")
    for create, docs in ((True, render(helm)), (False, off)):
        deployments = {component(d): d for d in by_kind(docs, "Deployment").values()}
        for name in streams:
            spec = deployments[name]["spec"]["template"]["spec"]
            assert "initContainers" not in spec
            env = env_of(spec["containers"][0])
            assert (env.get("KAFKA_CREATE_TOPICS") == "true") is create, name
            assert ("KAFKA_TOPIC_PARTITIONS" in env) is create, name
        assert "KAFKA_CREATE_TOPICS" not in env_of(
            deployments["api"]["spec"]["template"]["spec"]["containers"][0]
        )


def test_component_env_matches_the_service_contract(helm: str) -> None:
    docs = render(helm)
    config = by_kind(docs, "ConfigMap")[f"{RELEASE}-volatility"]["data"]
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == f"{RELEASE}-volatility-kafka:9092"
    assert config["KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert {config["LOG_LEVEL"], config["LOG_FORMAT"]} == {"INFO", "json"}
    deployments = {component(d): d for d in by_kind(docs, "Deployment").values()}
    containers = {c: d["spec"]["template"]["spec"]["containers"][0] for c, d in deployments.items()}
    ingest_env = env_of(containers["ingest"])
    assert ingest_env["INGEST_PRODUCTS"] == "BTC-USD,ETH-USD"
    assert ingest_env["INGEST_WS_URL"] == "wss://advanced-trade-ws.coinbase.com"
    assert "INGEST_STALE_AFTER_SECONDS" in ingest_env
    # The featurizer dead-letters any other product; two ingest pods would duplicate ticks.
    assert env_of(containers["featurizer"])["FEATURIZER_PRODUCTS"] == "BTC-USD,ETH-USD"
    assert deployments["ingest"]["spec"]["strategy"] == {"type": "Recreate"}
    assert "strategy" not in deployments["featurizer"]["spec"]
    for name in ("ingest", "featurizer", "consumer"):
        assert env_of(containers[name])["METRICS_PORT"] == "9000"
    for name in ("consumer", "api"):
        assert env_of(containers[name])["MODEL_VARIANT"] == "baseline"
    # The API listens on every interface of its pod; the Service and NetworkPolicy gate it.
    api_args = ["serve", "--host", "0.0.0.0", "--port", "8000"]  # noqa: S104
    assert containers["api"]["args"] == api_args
    job = next(iter(by_kind(docs, "Job").values()))
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    job_env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    assert job_env["KAFKA_TOPIC_PARTITIONS"] == "6"
    assert job_env["KAFKA_TOPIC_REPLICATION_FACTOR"] == "1"
    assert int(job_env["KAFKA_TOPIC_RETENTION_MS"]) > 0


def test_ml_variant_scenario(helm: str) -> None:
    docs = render(helm, "-f", str(CHART / "ci" / "02-ml-variant-values.yaml"))
    hpas = {component(d): d for d in by_kind(docs, "HorizontalPodAutoscaler").values()}
    assert set(hpas) == {"api", "consumer"}
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"{RELEASE}-volatility-{name}"
    for deployment in by_kind(docs, "Deployment").values():
        if component(deployment) in hpas:
            assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
            env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
            assert env["MODEL_VARIANT"] == "ml"


def test_external_kafka_scenario(helm: str) -> None:
    docs = render(helm, "-f", str(CHART / "ci" / "03-external-kafka-values.yaml"))
    assert kinds(docs)["StatefulSet"] == 0
    assert all(component(d) != "kafka" for d in docs)
    config = by_kind(docs, "ConfigMap")[f"{RELEASE}-volatility"]["data"]
    assert config["KAFKA_BOOTSTRAP_SERVERS"].startswith("kafka-0.kafka.example.internal:9093")
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert "KAFKA_SASL_PASSWORD" not in config, "the password belongs in a Secret"
    assert kinds(docs)["Secret"] == 0, "existingSecret is used, none is created"
    for where, spec in pod_specs(docs):
        if where.startswith("Pod/"):
            continue  # the test pod only talks HTTP to the API
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["name"] in ("api", "operator"):
                continue  # neither talks to Kafka
            ref = env_of(container)["KAFKA_SASL_PASSWORD"]["secretKeyRef"]
            assert ref == {"name": "volatility-kafka-credentials", "key": "password"}, where


def test_inline_sasl_password_goes_to_a_secret(helm: str) -> None:
    docs = render(
        helm,
        "--set",
        "kafka.enabled=false",
        "--set",
        "kafka.bootstrapServers=broker:9092",
        "--set",
        "kafka.securityProtocol=SASL_PLAINTEXT",
        "--set",
        "kafka.sasl.password=s3cret",
    )
    secret = by_kind(docs, "Secret")[f"{RELEASE}-volatility-kafka-sasl"]
    assert secret["data"]["password"] == "czNjcmV0"  # noqa: S105 - base64 of the test value
    assert "s3cret" not in json.dumps([d for d in docs if d["kind"] != "Secret"])


def test_monitoring_scenario_and_dashboard(helm: str) -> None:
    docs = render(helm, "-f", str(CHART / "ci" / "04-monitoring-values.yaml"))
    monitors = by_kind(docs, "ServiceMonitor")
    assert {component(m) for m in monitors.values()} == set(PROJECT_COMPONENTS)
    services = by_kind(docs, "Service")
    for monitor in monitors.values():
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        service = services[monitor["metadata"]["name"]]
        port_names = {p["name"] for p in service["spec"]["ports"]}
        assert monitor["spec"]["endpoints"][0]["port"] in port_names
    (rule,) = by_kind(docs, "PrometheusRule").values()
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert all("volatility_" in e or e.startswith("up{") for e in exprs), exprs
    dashboard_cms = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]
    ]
    assert len(dashboard_cms) == len(list((CHART / "dashboards").glob("*.json"))) >= 4
    for dashboard_cm in dashboard_cms:
        assert dashboard_cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert dashboard_cm["metadata"]["annotations"]["grafana_folder"] == "Volatility"
        (payload,) = dashboard_cm["data"].values()
        for panel in json.loads(payload)["panels"]:
            for target in panel.get("targets", []):
                metrics = re.findall(r"\b([a-z0-9_:]+)(?:\{|\[)", target["expr"])
                assert metrics and all("volatility_" in m for m in metrics), target["expr"]


def test_service_monitors_follow_the_cluster_capabilities(helm: str) -> None:
    assert kinds(render(helm))["ServiceMonitor"] == 0
    detected = render(helm, "--api-versions", "monitoring.coreos.com/v1")
    assert kinds(detected)["ServiceMonitor"] == 4
    assert kinds(detected)["PrometheusRule"] == 1
    opted_out = render(
        helm,
        "--api-versions",
        "monitoring.coreos.com/v1",
        "--set",
        "monitoring.serviceMonitors.autodetect=false",
    )
    assert kinds(opted_out)["ServiceMonitor"] == 0


def test_ingress_scenario(helm: str) -> None:
    docs = render(helm, "-f", str(CHART / "ci" / "05-ingress-host-values.yaml"))
    (ingress,) = by_kind(docs, "Ingress").values()
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "volatility.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    api_service = by_kind(docs, "Service")[backend["name"]]
    assert component(api_service) == "api"
    assert backend["port"]["name"] in {p["name"] for p in api_service["spec"]["ports"]}
    assert ingress["spec"]["tls"][0]["secretName"] == "volatility-tls"


def test_kwok_scenario_has_nothing_to_bind(helm: str) -> None:
    docs = render(helm, "-f", str(CHART / "ci" / "06-kwok-values.yaml"))
    (kafka,) = by_kind(docs, "StatefulSet").values()
    assert "volumeClaimTemplates" not in kafka["spec"]
    volumes = {v["name"]: v for v in kafka["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"]
    assert all(
        s["spec"].get("type", "ClusterIP") == "ClusterIP" for s in by_kind(docs, "Service").values()
    )


def test_kafka_is_a_single_node_kraft_statefulset(helm: str) -> None:
    docs = render(helm)
    (kafka,) = by_kind(docs, "StatefulSet").values()
    spec = kafka["spec"]
    assert spec["replicas"] == 1
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    (container,) = spec["template"]["spec"]["containers"]
    assert re.fullmatch(r"apache/kafka:4\.1\.\d+", container["image"])
    config = by_kind(docs, "ConfigMap")[f"{RELEASE}-volatility-kafka-config"]["data"]
    props = dict(
        line.split("=", 1)
        for line in config["server.properties"].splitlines()
        if line and not line.startswith("#")
    )
    assert props["process.roles"] == "broker,controller"
    headless = by_kind(docs, "Service")[spec["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert props["advertised.listeners"] == (
        f"PLAINTEXT://{kafka['metadata']['name']}-0.{spec['serviceName']}.{NAMESPACE}"
        ".svc.cluster.local:9092"
    )
    cluster_id = env_of(container)["KAFKA_CLUSTER_ID"]
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", cluster_id)
    # Stable across renders (an upgrade must not ask the existing log for another cluster).
    (again,) = by_kind(render(helm, "--set", "logLevel=DEBUG"), "StatefulSet").values()
    assert env_of(again["spec"]["template"]["spec"]["containers"][0])["KAFKA_CLUSTER_ID"] == (
        cluster_id
    )


def test_network_policies(helm: str) -> None:
    docs = render(helm)
    policies = {component(p): p["spec"] for p in by_kind(docs, "NetworkPolicy").values()}
    assert set(policies) == {*PROJECT_COMPONENTS, "kafka", "operator"}
    release_pods = {"app.kubernetes.io/name": "volatility", "app.kubernetes.io/instance": RELEASE}
    (kafka_rule,) = policies["kafka"]["ingress"]
    assert kafka_rule["from"] == [{"podSelector": {"matchLabels": release_pods}}]
    (api_rule,) = policies["api"]["ingress"]
    peers = api_rule["from"]
    assert peers[0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
    }
    assert {"podSelector": {"matchLabels": release_pods}} in peers
    for name in ("ingest", "featurizer", "consumer"):
        (rule,) = policies[name]["ingress"]
        assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    custom = render(
        helm,
        "--set",
        "networkPolicy.api.namespaceSelector.matchLabels.team=edge",
        "--set",
        "networkPolicy.metrics.enabled=false",
    )
    custom_policies = {component(p): p["spec"] for p in by_kind(custom, "NetworkPolicy").values()}
    assert custom_policies["api"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx",
        "team": "edge",
    }
    assert custom_policies["ingest"]["ingress"] == []
    assert kinds(render(helm, "--set", "networkPolicy.enabled=false"))["NetworkPolicy"] == 0


def test_one_component_change_touches_only_its_pod_template(helm: str) -> None:
    def templates(*args: str) -> dict[str, Any]:
        return {
            f"{d['kind']}/{d['metadata']['name']}": d["spec"]["template"]
            for d in render(helm, *args)
            if d["kind"] in {"Deployment", "StatefulSet"}
        }

    # A variant of its own for one scorer is a release without the operator.
    alone = ("--set", "operator.enabled=false")
    changed = {n for n, t in templates(*alone).items()
               if templates(*alone, "--set", "consumer.modelVariant=ml")[n] != t}  # fmt: skip
    assert changed == {f"Deployment/{RELEASE}-volatility-consumer"}
    before = templates()
    shared = templates("--set", "logLevel=DEBUG")
    changed_shared = {name for name in before if before[name] != shared[name]}
    assert changed_shared == {n for n in before if "kafka" not in n}, "checksum/config must roll"


def test_long_release_names_stay_within_kubernetes_limits(helm: str) -> None:
    proc = _helm(
        helm,
        "template",
        "a" * 53,
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "--api-versions",
        "monitoring.coreos.com/v1",
    )
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert all(len(n) <= 63 for _, n in names), [n for _, n in names if len(n) > 63]
    assert len(set(names)) == len(names), "truncation made two names of one kind collide"
    for sts_name in by_kind(docs, "StatefulSet"):
        assert len(sts_name) <= 52, "the controller-revision-hash label would exceed 63 characters"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "bogus=1"], "'bogus' not allowed"),
        (["--set", "api.bogus=1"], "/api"),
        (["--set", "api.replicaCount=two"], "/api/replicaCount"),
        (["--set", "modelVariant=deep"], "/modelVariant"),
        (["--set", "consumer.modelVariant=deep"], "/consumer/modelVariant"),
        (["--set", "kafka.persistence.enabled=yes"], "/kafka/persistence/enabled"),
        (["--set", "kafka.topics.partitions=0"], "/kafka/topics/partitions"),
        (["--set", "logFormat=xml"], "/logFormat"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_schema_rejects_invalid_values(helm: str, args: list[str], fragment: str) -> None:
    message = render_error(helm, *args)
    assert "schema" in message
    assert fragment in message, message


def test_external_kafka_without_bootstrap_servers_fails_clearly(helm: str) -> None:
    message = render_error(helm, "--set", "kafka.enabled=false")
    assert "kafka.bootstrapServers is required when kafka.enabled=false" in message


def test_bundled_kafka_refuses_non_plaintext_protocols(helm: str) -> None:
    message = render_error(helm, "--set", "kafka.securityProtocol=SASL_SSL")
    assert "speaks PLAINTEXT only" in message


def test_autoscaling_bounds_are_checked(helm: str) -> None:
    message = render_error(
        helm,
        "--set",
        "api.autoscaling.enabled=true",
        "--set",
        "api.autoscaling.minReplicas=5",
        "--set",
        "api.autoscaling.maxReplicas=2",
    )
    assert "api.autoscaling.minReplicas (5) exceeds maxReplicas (2)" in message


def test_notes_give_the_next_commands(helm: str, tmp_path: Path) -> None:
    # `helm template` does not print NOTES.txt and `helm install --dry-run` needs a cluster for
    # kubeVersion, so a copy of the chart renders the notes as a ConfigMap.
    chart = tmp_path / "volatility"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "notes.txt")
    (chart / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n"
        '{{ tpl (.Files.Get "notes.txt") . | indent 4 }}\n'
    )

    def notes(*args: str) -> str:
        proc = _helm(
            helm,
            "template",
            RELEASE,
            str(chart),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            "--show-only",
            "templates/notes.yaml",
            *args,
        )
        assert proc.returncode == 0, proc.stderr
        return str(yaml.safe_load(proc.stdout)["data"]["notes"])

    plain = notes()
    assert f"kubectl get pods -n {NAMESPACE} -l app.kubernetes.io/instance={RELEASE}" in plain
    assert f"kubectl port-forward -n {NAMESPACE} svc/{RELEASE}-volatility-api 8000:8000" in plain
    assert "$BASE/predict" in plain
    assert f"helm test {RELEASE} -n {NAMESPACE}" in plain
    routed = notes("-f", str(CHART / "ci" / "05-ingress-host-values.yaml"))
    assert "BASE=https://volatility.example.com" in routed
    assert "port-forward" not in routed
