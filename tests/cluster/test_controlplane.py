"""The control plane behind the cluster tier is a real, usable Kubernetes 1.34."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

from tests.infra.controlplane import Kube

RESTRICTED_POD_SECURITY = {
    "pod": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
    "container": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
}


def _pod(name: str, *, restricted: bool, restart: str = "Always") -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "registry.k8s.io/pause:3.10"}
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": restart}
    if restricted:
        container["securityContext"] = RESTRICTED_POD_SECURITY["container"]
        spec["securityContext"] = RESTRICTED_POD_SECURITY["pod"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    template = _pod(name, restricted=True)
    template["metadata"] = {"labels": {"app": name}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": template["metadata"], "spec": template["spec"]},
        },
    }


def _apply(kube: Kube, ns: str, obj: dict[str, Any], check: bool = True) -> Any:
    return kube.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(obj), check=check)


def _get(kube: Kube, *args: str) -> Any:
    return json.loads(kube.kubectl("get", *args, "-o", "json").stdout)


def test_apiserver_reports_v1_34(kube: Kube) -> None:
    version = json.loads(kube.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert version["gitVersion"].startswith("v1.34."), version
    assert (version["major"], version["minor"]) == ("1", "34")
    # Helm parses the same string as semver when a chart declares kubeVersion.
    capabilities = kube.helm("version", "--short").stdout
    assert capabilities.startswith("v3.")


def test_kwok_node_is_ready_and_schedulable(kube: Kube) -> None:
    node = kube.plane.node_names[0]
    kube.kubectl("wait", "--for=condition=Ready", f"node/{node}", "--timeout=60s")
    obj = _get(kube, "node", node)
    assert not obj["spec"].get("taints"), obj["spec"]
    assert obj["spec"].get("unschedulable") is not True
    assert int(obj["status"]["allocatable"]["pods"]) > 10


def test_deployment_of_two_replicas_becomes_available(kube: Kube) -> None:
    ns = kube.namespace("deploy")
    _apply(kube, ns, _deployment("web", 2))
    kube.kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=120s")
    status = _get(kube, "-n", ns, "deployment", "web")["status"]
    assert status["availableReplicas"] == 2
    pods = _get(kube, "-n", ns, "pods", "-l", "app=web")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"] in kube.plane.node_names  # bound by kube-scheduler
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"]
        # ServiceAccount admission mounted a projected token: the controller-manager created
        # the namespace's default ServiceAccount and kube-root-ca.crt.
        volumes = [v["name"] for v in pod["spec"]["volumes"]]
        assert any(v.startswith("kube-api-access-") for v in volumes), volumes


def test_restricted_pod_security_is_enforced(kube: Kube) -> None:
    restricted = kube.namespace("restricted", pod_security="restricted")
    rejected = _apply(kube, restricted, _pod("loose", restricted=False), check=False)
    assert rejected.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in rejected.stderr, rejected.stderr
    assert "allowPrivilegeEscalation" in rejected.stderr
    assert kube.kubectl("get", "-n", restricted, "pod", "loose", check=False).returncode != 0

    _apply(kube, restricted, _pod("tight", restricted=True))
    kube.kubectl("wait", "-n", restricted, "--for=condition=Ready", "pod/tight", "--timeout=60s")

    # The same loose pod is fine where no level is enforced: the label made the difference.
    open_ns = kube.namespace("unlabelled")
    _apply(kube, open_ns, _pod("loose", restricted=False))


def test_job_and_run_to_completion_pods_succeed(kube: Kube) -> None:
    ns = kube.namespace("jobs")
    pod = _pod("once", restricted=True, restart="Never")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {"backoffLimit": 0, "template": {"spec": pod["spec"]}},
    }
    _apply(kube, ns, job)
    kube.kubectl("wait", "-n", ns, "--for=condition=Complete", "job/once", "--timeout=90s")
    # A bare pod that is meant to finish (a `helm test` hook) succeeds too.
    _apply(kube, ns, _pod("hook", restricted=True, restart="Never"))
    kube.kubectl(
        "wait", "-n", ns, "--for=jsonpath={.status.phase}=Succeeded", "pod/hook", "--timeout=60s"
    )


def test_service_account_tokens_authenticate(kube: Kube) -> None:
    ns = kube.namespace("sa")
    token = kube.kubectl("create", "token", "default", "-n", ns, "--duration=10m").stdout.strip()
    assert token.count(".") == 2  # a signed JWT
    whoami = kube.kubectl("auth", "whoami", "--token", token, "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{ns}:default"
    )
    # RBAC is on: a fresh ServiceAccount may not list pods.
    can = kube.kubectl("auth", "can-i", "list", "pods", "-n", ns, "--token", token, check=False)
    assert can.stdout.strip() == "no"


def test_namespace_deletion_completes(kube: Kube) -> None:
    ns = kube.namespace("doomed")
    _apply(kube, ns, _deployment("web", 2))
    kube.kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=120s")
    # Deletion has to get through the pods: the namespace controller and the garbage collector
    # delete them, kwok confirms their termination.
    kube.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=120s")
    gone = kube.kubectl("get", "namespace", ns, check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr


def test_helm_install_wait_and_helm_test(kube: Kube, tmp_path: Path) -> None:
    chart = tmp_path / "probe"
    (chart / "templates" / "tests").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: probe\nversion: 0.1.0\nkubeVersion: '>=1.34.0-0 <1.35.0-0'\n"
    )
    deployment = _deployment("{{ .Release.Name }}-web", 2)
    hook = _pod("{{ .Release.Name }}-check", restricted=True, restart="Never")
    hook["metadata"]["annotations"] = {"helm.sh/hook": "test"}
    (chart / "templates" / "deployment.yaml").write_text(json.dumps(deployment, indent=1))
    (chart / "templates" / "tests" / "check.yaml").write_text(json.dumps(hook, indent=1))
    ns = kube.namespace("helm", pod_security="restricted")
    kube.helm("install", "rel", str(chart), "-n", ns, "--wait", "--timeout=120s")
    listed = json.loads(kube.helm("list", "-n", ns, "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in listed] == [("rel", "deployed")]
    result = kube.helm("test", "rel", "-n", ns, "--timeout=60s")
    assert re.search(r"Phase:\s+Succeeded", result.stdout), textwrap.shorten(result.stdout, 400)
