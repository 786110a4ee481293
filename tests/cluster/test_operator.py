"""The ModelVariant operator on a real control plane, under the chart's ServiceAccount.

The chart is installed with the operator enabled (its RBAC, ServiceAccount and the release's
ModelVariant); `volatility operator` runs here with the arguments of the chart's operator pod
and that ServiceAccount's token. kwok pods run no containers, so the pods cannot be asked what
they serve (--no-probe-pods: Ready follows the pod template and readiness); what they report
is covered by the unit tests against the real services (tests/unit/operator/test_probe.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.operator_process import (
    FreezingProxy,
    OperatorProcess,
    service_account_kubeconfig,
)
from tests.cluster.operator_release import (
    ACCOUNT,
    CHART,
    NAME,
    RELEASE,
    WORKLOADS,
    Release,
    install,
)
from tests.infra.controlplane import CommandFailed, Kube
from tests.infra.prometheus import Prometheus, SignalExporter, provision


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = obj["status"]["conditions"]
    found: dict[str, Any] = next(c for c in conditions if c["type"] == kind)
    return found


@pytest.fixture(scope="module")
def release(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    ns = kube.namespace("operator", pod_security="restricted")
    args = install(kube, ns)
    work = tmp_path_factory.mktemp("operator")
    config = service_account_kubeconfig(kube, ns, ACCOUNT, work / "kubeconfig")
    # The API's metrics, fed with a chosen error ratio, scraped by a real Prometheus that the
    # operator reads for automatic rollback.
    exporter = SignalExporter()
    with Prometheus(provision(), [f"127.0.0.1:{exporter.port}"]) as prometheus:
        operator = OperatorProcess(
            [
                *args,
                "--no-probe-pods",
                f"--prometheus-url={prometheus.url}",
                "--signal-interval=1",
            ],
            config,
            ns,
            work / "operator.log",
        )
        operator.start()
        try:
            yield Release(kube, ns, operator, exporter)
        finally:
            operator.stop()
            exporter.close()


def can_i(kube: Kube, ns: str, *args: str) -> bool:
    who = f"system:serviceaccount:{ns}:{ACCOUNT}"
    proc = kube.kubectl("auth", "can-i", *args, "-n", ns, "--as", who, check=False)
    return proc.stdout.strip() == "yes"


def test_the_service_account_may_do_what_the_operator_needs_and_nothing_more(
    kube: Kube, release: Release
) -> None:
    ns = release.ns
    allowed = [
        ("list", "modelvariants.volatility.dev"),
        ("watch", "modelvariants.volatility.dev"),
        ("get", f"modelvariants.volatility.dev/{NAME}"),
        ("patch", f"modelvariants.volatility.dev/{NAME}", "--subresource=status"),
        ("create", "events"),
        ("list", "pods"),
        *[
            (verb, f"deployments.apps/{name}")
            for name in WORKLOADS.values()
            for verb in ("get", "patch")
        ],
    ]
    denied = [
        ("patch", f"modelvariants.volatility.dev/{NAME}"),  # the spec is a person's
        ("delete", f"modelvariants.volatility.dev/{NAME}"),
        ("create", "modelvariants.volatility.dev"),
        ("patch", f"deployments.apps/{RELEASE}-volatility-featurizer"),
        ("patch", f"statefulsets.apps/{RELEASE}-volatility-kafka"),
        ("list", "deployments.apps"),
        ("create", "deployments.apps"),
        ("delete", f"deployments.apps/{WORKLOADS['api']}"),
        ("update", f"deployments.apps/{WORKLOADS['api']}"),
        ("patch", f"deployments.apps/{WORKLOADS['api']}", "--subresource=scale"),
        ("create", "pods"),
        ("delete", "pods"),
        ("create", "pods", "--subresource=exec"),
        ("get", "secrets"),
        ("list", "secrets"),
        ("list", "configmaps"),
        ("patch", "events"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
    ]
    assert [a for a in allowed if not can_i(kube, ns, *a)] == []
    assert [d for d in denied if can_i(kube, ns, *d)] == []
    # Nothing outside its namespace, nothing cluster-scoped.
    other = kube.namespace("operator-other")
    who = f"system:serviceaccount:{ns}:{ACCOUNT}"
    for args in (
        ("list", "modelvariants.volatility.dev", "-n", other),
        ("patch", f"deployments.apps/{WORKLOADS['api']}", "-n", other),
        ("list", "customresourcedefinitions.apiextensions.k8s.io"),
        ("list", "namespaces"),
        ("list", "nodes"),
        ("list", "modelvariants.volatility.dev", "--all-namespaces"),
    ):
        proc = kube.kubectl("auth", "can-i", *args, "--as", who, check=False)
        assert proc.stdout.strip() == "no", args


def test_the_release_model_variant_becomes_ready_on_what_the_chart_started(
    release: Release,
) -> None:
    obj = release.ready_on("baseline")
    assert _condition(obj, "Ready")["status"] == "True"
    assert _condition(obj, "Degraded")["status"] == "False"
    assert {release.template_variant(r) for r in WORKLOADS} == {"baseline"}
    listed = release.kube.kubectl("get", "mv", "-n", release.ns).stdout
    assert listed.split("\n")[0].split()[:5] == ["NAME", "VARIANT", "SERVING", "PHASE", "READY"]
    assert listed.split("\n")[1].split()[:5] == [NAME, "baseline", "baseline", "Ready", "True"]


def test_kubectl_explain_describes_the_fields(kube: Kube, release: Release) -> None:
    spec = kube.kubectl("explain", "mv.spec").stdout
    assert "The desired state." in spec
    for field in (
        "variant",
        "modelVersion",
        "workloads",
        "progressDeadlineSeconds",
        "autoRollback",
    ):
        assert field in spec, field
    auto = kube.kubectl("explain", "modelvariants.spec.autoRollback.clearRatio").stdout
    assert "Hysteresis" in auto
    status = kube.kubectl("explain", "mv.status.history").stdout
    assert "The last switches of the serving variant" in status


def test_apply_switches_to_ml_and_back_with_one_rollout_each(release: Release) -> None:
    release.ready_on("baseline")
    for variant in ("ml", "baseline"):
        generations = {r: release.deployment(r)["metadata"]["generation"] for r in WORKLOADS}
        seen = {e["metadata"]["uid"] for e in release.events()}
        start = time.monotonic()
        if variant == "ml":
            release.apply({"variant": variant})
        else:  # the README's rollback command
            release.patch_variant(variant)
        obj = release.ready_on(variant)
        elapsed = time.monotonic() - start
        print(f"kubectl apply -> Ready on {variant}: {elapsed:.2f}s (kwok pods)")
        for role in WORKLOADS:
            d = release.deployment(role)
            assert release.template_variant(role) == variant
            # Exactly one rollout: the operator patched the template once.
            assert d["metadata"]["generation"] == generations[role] + 1, role
            assert d["status"]["updatedReplicas"] == d["spec"]["replicas"] == 2
        assert obj["status"]["history"][-1]["to"] == variant
        assert obj["status"]["history"][-1]["trigger"] == "manual"
        new = [e for e in release.events() if e["metadata"]["uid"] not in seen]
        reasons = {e["reason"] for e in new}
        assert {"VariantSwitching", "VariantServing"} <= reasons, reasons
        assert all(e["type"] == "Normal" for e in new)
        assert all(e["source"]["component"] == "volatility-operator" for e in new)
        row = release.kube.kubectl("get", "mv", NAME, "-n", release.ns, "--no-headers").stdout
        assert row.split()[:5] == [NAME, variant, variant, "Ready", "True"]
    # Re-applying the same spec changes nothing: no new generation, no rollout.
    release.apply({"variant": "baseline"})
    before = {r: release.deployment(r)["metadata"]["generation"] for r in WORKLOADS}
    generation = release.mv()["metadata"]["generation"]
    unchanged = release.apply({"variant": "baseline"})
    assert "unchanged" in unchanged.stdout
    release.ready_on("baseline")
    assert release.mv()["metadata"]["generation"] == generation
    assert {r: release.deployment(r)["metadata"]["generation"] for r in WORKLOADS} == before


def test_helm_upgrades_keep_a_kubectl_switch_and_switch_through_the_model_variant(
    release: Release,
) -> None:
    """Helm and the operator both write the pod templates. An upgrade, even one that changes
    the templates, keeps a switch made with kubectl (Helm's three-way merge would otherwise put
    the chart's variant back, and the operator would roll again); an upgrade of `modelVariant`
    switches through the ModelVariant, with one rollout."""
    kube = release.kube
    release.ready_on("baseline")
    release.patch_variant("ml")
    release.ready_on("ml")
    generations = {r: release.deployment(r)["metadata"]["generation"] for r in WORKLOADS}
    kube.helm(
        "upgrade", RELEASE, str(CHART), "-n", release.ns, "--reuse-values",
        "--set-string", "api.podAnnotations.example\\.org/touched=1",
        "--set-string", "consumer.podAnnotations.example\\.org/touched=1",
        "--wait", "--timeout=240s", timeout=300,
    )  # fmt: skip
    for role in WORKLOADS:
        d = release.deployment(role)
        assert d["spec"]["template"]["metadata"]["annotations"]["example.org/touched"] == "1"
        assert release.template_variant(role) == "ml", role
        # One rollout, the upgrade's: the variant was never put back for the operator to undo.
        assert d["metadata"]["generation"] == generations[role] + 1, role
    assert release.mv()["spec"]["variant"] == "ml"
    release.ready_on("ml")
    release.patch_variant("baseline")
    release.ready_on("baseline")

    # The chart's `modelVariant` changes: Helm patches the ModelVariant, the operator rolls.
    for variant in ("ml", "baseline"):
        generations = {r: release.deployment(r)["metadata"]["generation"] for r in WORKLOADS}
        kube.helm(
            "upgrade", RELEASE, str(CHART), "-n", release.ns, "--reuse-values",
            "--set", f"modelVariant={variant}", "--wait", "--timeout=240s", timeout=300,
        )  # fmt: skip
        obj = release.ready_on(variant)
        assert obj["spec"]["variant"] == variant
        assert obj["status"]["history"][-1]["to"] == variant
        for role in WORKLOADS:
            assert release.template_variant(role) == variant, role
            generation = release.deployment(role)["metadata"]["generation"]
            assert generation == generations[role] + 1, role


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"variant": "deep"}, 'spec.variant: Unsupported value: "deep"'),
        ({}, "spec.variant: Required value"),
        ({"variant": "ml", "progressDeadlineSeconds": 1}, "spec.progressDeadlineSeconds"),
        (
            {"variant": "ml", "workloads": [{"name": "Bad_Name", "role": "api"}]},
            "spec.workloads[0].name",
        ),
        ({"variant": "ml", "workloads": [{"name": "x", "role": "web"}]}, "spec.workloads[0].role"),
        (
            {"variant": "ml", "autoRollback": {"enabled": True}},
            "spec.autoRollback.enabled: Required value: needs at least one threshold",
        ),
        (
            {"variant": "baseline", "autoRollback": {"enabled": True, "errorRatio": 0.1}},
            "spec.autoRollback.enabled: Invalid value",
        ),
        (
            {"variant": "ml", "autoRollback": {"errorRatio": 2}},
            "spec.autoRollback.errorRatio",
        ),
        (
            {"variant": "ml", "autoRollback": {"windowSeconds": 600, "cooldownSeconds": 60}},
            "spec.autoRollback.cooldownSeconds: Invalid value",
        ),
        ({"variant": "ml", "colour": "blue"}, 'unknown field "spec.colour"'),
    ],
)
def test_a_wrong_spec_is_refused_naming_the_field(
    release: Release, spec: dict[str, Any], message: str
) -> None:
    before = release.mv()["metadata"]["generation"]
    refused = release.apply(spec, check=False)
    assert refused.returncode != 0
    assert message in refused.stderr, refused.stderr
    assert release.mv()["metadata"]["generation"] == before


def _pods(kube: Kube, ns: str) -> int:
    pods = json.loads(kube.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"]
    return sum(1 for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed"))


def _freeze_pods(kube: Kube, ns: str) -> None:
    """A quota of exactly the pods that exist: a rollout cannot create its new pod."""
    hard = _pods(kube, ns)
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "freeze", "namespace": ns},
        "spec": {"hard": {"pods": str(hard)}},
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(quota))
    # Admission enforces the quota once the controller has counted what is used.
    kube.kubectl(
        "wait", "-n", ns, "resourcequota/freeze", f"--for=jsonpath={{.status.used.pods}}={hard}",
        "--timeout=60s",
    )  # fmt: skip


def test_a_change_that_cannot_finish_is_reverted_and_reported_degraded(
    kube: Kube, release: Release
) -> None:
    release.apply({"variant": "baseline"})
    release.ready_on("baseline")
    seen = {e["metadata"]["uid"] for e in release.events()}
    _freeze_pods(kube, release.ns)
    try:
        release.apply({"variant": "ml", "progressDeadlineSeconds": 5})
        obj = release.wait(
            lambda o: (
                (o.get("status") or {}).get("phase") == "Degraded"
                and (o["status"].get("hold") or {}).get("reason") == "ProgressDeadlineExceeded"
            ),
            "Degraded after the deadline",
        )
        degraded = _condition(obj, "Degraded")
        assert degraded["status"] == "True"
        assert degraded["reason"] == "ProgressDeadlineExceeded"
        assert "ml not serving after 5s" in obj["status"]["hold"]["message"]
        # Reverted: the templates run baseline again, which the old pods still serve.
        assert {release.template_variant(r) for r in WORKLOADS} == {"baseline"}
        release.wait(lambda o: o["status"].get("variant") == "baseline", "baseline serving")
        warnings = [
            e
            for e in release.events()
            if e["metadata"]["uid"] not in seen and e["type"] == "Warning"
        ]
        assert [e["reason"] for e in warnings] == ["ProgressDeadlineExceeded"]
        assert "reverted to baseline" in warnings[0]["message"]
    finally:
        kube.kubectl("delete", "resourcequota", "freeze", "-n", release.ns)
    # It does not retry on its own; a person's new spec does.
    assert release.mv()["status"]["phase"] == "Degraded"
    release.apply({"variant": "ml", "progressDeadlineSeconds": 60})
    release.ready_on("ml")


def test_a_model_version_no_pod_confirms_is_reverted(release: Release) -> None:
    # Here no pod can be asked (kwok runs no containers), so no version is ever confirmed:
    # the path a version the image does not ship takes on real pods.
    release.apply({"variant": "baseline"})
    release.ready_on("baseline")
    release.apply({"variant": "ml", "modelVersion": "9.9.9", "progressDeadlineSeconds": 5})
    obj = release.wait(
        lambda o: (
            (o.get("status") or {}).get("phase") == "Degraded"
            and o["status"].get("variant") == "baseline"
            and o["status"].get("observedGeneration") == o["metadata"]["generation"]
        ),
        "the revert of an unconfirmed version",
    )
    assert "modelVersion 9.9.9" in obj["status"]["hold"]["message"]
    assert {release.template_variant(r) for r in WORKLOADS} == {"baseline"}
    release.apply({"variant": "baseline"})
    release.ready_on("baseline")


def test_the_operator_killed_in_the_middle_of_a_change_finishes_it_after_restart(
    kube: Kube, release: Release
) -> None:
    release.apply({"variant": "ml"})
    release.ready_on("ml")
    _freeze_pods(kube, release.ns)  # hold the rollout in the middle
    try:
        release.apply({"variant": "baseline", "progressDeadlineSeconds": 120})
        release.wait(
            lambda o: (
                (o.get("status") or {}).get("phase") == "Progressing"
                and o["status"].get("target") == "baseline"
            ),
            "the change in flight",
        )
        assert {release.template_variant(r) for r in WORKLOADS} == {"baseline"}
        release.operator.kill()
    finally:
        kube.kubectl("delete", "resourcequota", "freeze", "-n", release.ns)
    # The Deployments finish rolling on their own; nobody updates the resource meanwhile.
    for role in WORKLOADS:
        kube.kubectl(
            "rollout", "status", "-n", release.ns, f"deployment/{WORKLOADS[role]}", "--timeout=120s"
        )
    assert release.mv()["status"]["phase"] == "Progressing"
    release.operator.start()
    obj = release.ready_on("baseline")
    assert obj["status"]["history"][-1]["from"] == "ml"
    assert release.operator.starts == 2


def test_a_breach_in_prometheus_rolls_back_to_baseline_once_and_a_person_wins(
    release: Release,
) -> None:
    exporter = release.exporter
    assert exporter is not None
    exporter.error_ratio = 0.0
    policy = {"enabled": True, "errorRatio": 0.05, "windowSeconds": 10, "cooldownSeconds": 10}
    release.apply({"variant": "ml", "autoRollback": policy})
    release.ready_on("ml")
    seen = {e["metadata"]["uid"] for e in release.events()}
    exporter.error_ratio = 0.2  # 20 % of the API's answers are 503 from now on
    start = time.monotonic()
    obj = release.wait(
        lambda o: (
            (o.get("status") or {}).get("phase") == "RolledBack"
            and o["status"].get("variant") == "baseline"
        ),
        "the automatic rollback",
        timeout=90,
    )
    print(f"breach -> RolledBack on baseline: {time.monotonic() - start:.1f}s (window 10s)")
    assert obj["spec"]["variant"] == "ml"  # the spec is a person's; the hold says why
    assert obj["status"]["hold"]["reason"] == "AutomaticRollback"
    assert "errorRatio=" in obj["status"]["hold"]["message"]
    assert obj["status"]["history"][-1]["trigger"] == "automatic"
    assert {release.template_variant(r) for r in WORKLOADS} == {"baseline"}
    warnings = [
        e for e in release.events() if e["metadata"]["uid"] not in seen and e["type"] == "Warning"
    ]
    assert [e["reason"] for e in warnings] == ["AutomaticRollback"]
    # No flapping: while the breach goes on and after it ends, the operator keeps baseline.
    for ratio in (0.2, 0.0):
        exporter.error_ratio = ratio
        wanted = release.operator.log_text().count("signals ") + 5

        def sampled(text: str, wanted: int = wanted) -> bool:
            return text.count("signals ") >= wanted

        release.operator.wait_log(sampled, "5 more samples")
        assert release.mv()["status"]["phase"] == "RolledBack"
        assert {release.template_variant(r) for r in WORKLOADS} == {"baseline"}
    # A person applies a new spec: the hold ends and ml rolls out again.
    release.apply(
        {"variant": "ml", "autoRollback": {**policy, "windowSeconds": 20, "cooldownSeconds": 20}}
    )
    obj = release.ready_on("ml")
    assert "hold" not in obj["status"]
    release.apply({"variant": "baseline"})
    release.ready_on("baseline")


def test_liveness_reports_a_watch_that_keeps_up(release: Release) -> None:
    answer = release.operator.liveness()
    assert answer is not None
    status, body = answer
    assert status == 200, body
    assert body["watch"] == "1 resources up to date"


def test_liveness_fails_when_the_watch_stalls(kube: Kube, release: Release, tmp_path: Path) -> None:
    """A second operator reaches the API server through a relay; freezing the relay's open
    connections stalls kopf's watch while new requests (the probe's list) still get through."""
    release.operator.stop()
    proxy = FreezingProxy(int(kube.plane.server.rsplit(":", 1)[1]))
    config = json.loads(Path(release.operator.env["KUBECONFIG"]).read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    relayed = tmp_path / "kubeconfig"
    relayed.write_text(json.dumps(config))
    stalled = OperatorProcess(
        [*release.operator.args, "--watch-tolerance=3"], relayed, release.ns, tmp_path / "op.log"
    )
    try:
        stalled.start()
        deadline = time.monotonic() + 60
        while stalled.liveness() != (200, {"watch": "1 resources up to date"}):
            assert time.monotonic() < deadline, (stalled.liveness(), stalled.log_tail())
            time.sleep(0.5)  # poll the endpoint against the deadline
        proxy.freeze()
        # A change the frozen watch cannot deliver (made directly, not through the relay).
        kube.kubectl("label", "mv", NAME, "-n", release.ns, "probe=stalled", "--overwrite")
        deadline = time.monotonic() + 120
        while True:
            answer = stalled.liveness()
            if answer is not None and answer[0] == 500:
                break
            assert time.monotonic() < deadline, (answer, stalled.log_tail())
            time.sleep(1)  # poll the endpoint against the deadline
    finally:
        stalled.stop()
        proxy.close()
        release.operator.start()
    assert "has not delivered the latest state" in stalled.log_text(), stalled.log_tail()


def test_deleting_the_resource_needs_no_operator(kube: Kube, release: Release) -> None:
    # No finalizer: `helm uninstall` removes the resource even when the operator is gone.
    assert not release.mv()["metadata"].get("finalizers")
    release.operator.stop()
    try:
        kube.kubectl("delete", "mv", NAME, "-n", release.ns, "--timeout=30s")
    finally:
        release.operator.start()
    with pytest.raises(CommandFailed, match="NotFound"):
        kube.kubectl("get", "mv", NAME, "-n", release.ns)
