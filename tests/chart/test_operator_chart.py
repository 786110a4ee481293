"""The operator's part of the chart, rendered: its command, its RBAC, the release's ModelVariant."""

from __future__ import annotations

from typing import Any

from tests.chart.test_chart_render import (
    RELEASE,
    by_kind,
    component,
    helm,  # noqa: F401 - the fixture
    render,
    render_error,
)

ON = ("--set", "operator.enabled=true")


def test_on_by_default_and_off_renders_nothing_of_the_operator(helm: str) -> None:  # noqa: F811
    docs = render(helm)
    assert f"{RELEASE}-volatility-operator" in by_kind(docs, "Deployment")
    assert list(by_kind(docs, "ModelVariant")) == [f"{RELEASE}-volatility"]
    off = render(helm, "--set", "operator.enabled=false")
    assert [d for d in off if component(d) == "operator"] == []
    assert by_kind(off, "ModelVariant") == {}


def test_operator_runs_a_real_command_with_the_release_workloads(helm: str) -> None:  # noqa: F811
    from volatility.cli import build_parser

    docs = render(helm, *ON)
    deployment = by_kind(docs, "Deployment")[f"{RELEASE}-volatility-operator"]
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == f"{RELEASE}-volatility-operator"
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "operator"
    assert args.default_workloads == (
        f"api={RELEASE}-volatility-api,consumer={RELEASE}-volatility-consumer"
    )
    assert args.probe_pods is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts


def _rules(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {name: role["rules"] for name, role in by_kind(docs, "Role").items()}


def test_rbac_is_namespaced_split_and_least_privilege(helm: str) -> None:  # noqa: F811
    docs = render(helm, *ON)
    assert by_kind(docs, "ClusterRole") == {} and by_kind(docs, "ClusterRoleBinding") == {}
    rules = _rules(docs)
    name = f"{RELEASE}-volatility-operator"
    assert set(rules) == {f"{name}-framework", f"{name}-application"}
    for rule in [r for rs in rules.values() for r in rs]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert not {"delete", "deletecollection", "create", "update"} & set(rule["verbs"]) or (
            rule["resources"] == ["events"] and rule["verbs"] == ["create"]
        ), rule
    (deployments,) = [r for r in rules[f"{name}-application"] if r["resources"] == ["deployments"]]
    assert sorted(deployments["resourceNames"]) == [
        f"{RELEASE}-volatility-api",
        f"{RELEASE}-volatility-consumer",
    ]
    assert deployments["verbs"] == ["get", "patch"]
    bindings = by_kind(docs, "RoleBinding")
    for part in ("framework", "application"):
        binding = bindings[f"{name}-{part}"]
        assert binding["roleRef"]["name"] == f"{name}-{part}"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": name, "namespace": "volatility"}
        ]


def test_the_release_model_variant_starts_where_the_pods_start(helm: str) -> None:  # noqa: F811
    docs = render(helm, *ON, "--set", "modelVariant=ml")
    (mv,) = by_kind(docs, "ModelVariant").values()
    assert mv["apiVersion"] == "volatility.dev/v1alpha1"
    assert mv["spec"] == {"variant": "ml", "progressDeadlineSeconds": 120}
    none = render(helm, *ON, "--set", "operator.modelVariant.create=false")
    assert by_kind(none, "ModelVariant") == {}


def test_a_component_variant_that_contradicts_the_model_variant_is_refused(
    helm: str,  # noqa: F811
) -> None:
    error = render_error(helm, *ON, "--set", "api.modelVariant=ml")
    assert "api.modelVariant=ml differs from modelVariant=baseline" in error


def test_the_operator_may_reach_the_consumer_metrics_and_nothing_reaches_it(
    helm: str,  # noqa: F811
) -> None:
    docs = render(helm, *ON)
    policies = by_kind(docs, "NetworkPolicy")
    assert policies[f"{RELEASE}-volatility-operator"]["spec"]["ingress"] == []
    (rule,) = policies[f"{RELEASE}-volatility-consumer-from-operator"]["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
