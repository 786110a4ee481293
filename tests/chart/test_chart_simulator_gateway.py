"""The simulator option and the Gateway API route, rendered with the real helm binary."""

from __future__ import annotations

from tests.chart.test_chart_render import (
    CHART,
    RELEASE,
    by_kind,
    env_of,
    helm,  # noqa: F401 - the fixture
    render,
    render_error,
)

SCENARIO = CHART / "ci" / "08-simulator-gateway-values.yaml"
FULLNAME = f"{RELEASE}-volatility"


def test_simulator_feeds_ingest_from_the_ingest_image(helm: str) -> None:  # noqa: F811
    docs = render(helm, "-f", str(SCENARIO))
    deployments = by_kind(docs, "Deployment")
    simulator = deployments[f"{FULLNAME}-simulator"]["spec"]["template"]["spec"]
    ingest = deployments[f"{FULLNAME}-ingest"]["spec"]["template"]["spec"]
    (sim,) = simulator["containers"]
    assert sim["image"] == ingest["containers"][0]["image"]
    assert sim["args"][:2] == ["simulate", "--synthetic"]
    assert "--seed=7" in sim["args"] and "--host=0.0.0.0" in sim["args"]
    assert sim["args"][-2:] == ["BTC-USD", "ETH-USD"]  # ingest's products, nothing else
    service = by_kind(docs, "Service")[f"{FULLNAME}-simulator"]
    (port,) = service["spec"]["ports"]
    url = env_of(ingest["containers"][0])["INGEST_WS_URL"]
    assert url == f"ws://{FULLNAME}-simulator:{port['port']}"
    policy = by_kind(docs, "NetworkPolicy")[f"{FULLNAME}-simulator"]
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "ingest"


def test_simulator_is_off_by_default_and_ingest_reads_the_exchange(helm: str) -> None:  # noqa: F811
    docs = render(helm)
    assert f"{FULLNAME}-simulator" not in by_kind(docs, "Deployment")
    ingest = by_kind(docs, "Deployment")[f"{FULLNAME}-ingest"]["spec"]["template"]["spec"]
    assert env_of(ingest["containers"][0])["INGEST_WS_URL"].startswith("wss://")
    assert not by_kind(docs, "HTTPRoute")


def test_http_route_sends_the_prefix_to_the_api_service(helm: str) -> None:  # noqa: F811
    docs = render(helm, "-f", str(SCENARIO))
    (route,) = by_kind(docs, "HTTPRoute").values()
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [
        {"name": "web", "namespace": "gateway", "sectionName": "http"}
    ]
    assert route["spec"]["hostnames"] == ["volatility.example.com"]
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    (backend,) = rule["backendRefs"]
    service = by_kind(docs, "Service")[backend["name"]]
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
    assert backend["port"] in {p["port"] for p in service["spec"]["ports"]}


def test_http_route_without_a_gateway_fails_clearly(helm: str) -> None:  # noqa: F811
    message = render_error(helm, "--set", "httpRoute.enabled=true")
    assert "httpRoute.parentRefs is required" in message
