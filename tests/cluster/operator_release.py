"""The chart installed with the operator enabled, and the view of it the operator tests and
the operator benchmark share: the release's ModelVariant, its Deployments, Events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cluster.operator_process import OperatorProcess
from tests.infra.controlplane import Kube
from tests.infra.prometheus import SignalExporter

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "volatility"
KWOK_VALUES = CHART / "ci" / "06-kwok-values.yaml"
RELEASE = "mv"
NAME = f"{RELEASE}-volatility"  # the release's ModelVariant
ACCOUNT = f"{RELEASE}-volatility-operator"
WORKLOADS = {"api": f"{RELEASE}-volatility-api", "consumer": f"{RELEASE}-volatility-consumer"}


class Release:
    def __init__(
        self, kube: Kube, ns: str, operator: OperatorProcess, exporter: SignalExporter | None
    ) -> None:
        self.kube, self.ns, self.operator, self.exporter = kube, ns, operator, exporter

    def mv(self) -> dict[str, Any]:
        path = f"/apis/volatility.dev/v1alpha1/namespaces/{self.ns}/modelvariants/{NAME}"
        obj: dict[str, Any] = self.kube.plane.api("GET", path)
        return obj

    def deployment(self, role: str) -> dict[str, Any]:
        path = f"/apis/apps/v1/namespaces/{self.ns}/deployments/{WORKLOADS[role]}"
        obj: dict[str, Any] = self.kube.plane.api("GET", path)
        return obj

    def apply(self, spec: dict[str, Any], check: bool = True) -> Any:
        manifest = {
            "apiVersion": "volatility.dev/v1alpha1",
            "kind": "ModelVariant",
            "metadata": {"name": NAME, "namespace": self.ns},
            "spec": spec,
        }
        return self.kube.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=check)

    def patch_variant(self, variant: str) -> None:
        """The README's rollback command: `kubectl patch mv ... --type merge`."""
        self.kube.kubectl(
            "-n", self.ns, "patch", "mv", NAME, "--type", "merge",
            "-p", json.dumps({"spec": {"variant": variant}}),
        )  # fmt: skip

    def events(self) -> list[dict[str, Any]]:
        out = self.kube.kubectl(
            "get", "events", "-n", self.ns, "-o", "json",
            "--field-selector", f"involvedObject.kind=ModelVariant,involvedObject.name={NAME}",
        )  # fmt: skip
        items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        return items

    def wait(self, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 60) -> Any:
        """Polls the ModelVariant until ``check`` holds; fails with its last status."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.mv()
            if check(obj):
                return obj
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {what}; status: "
                    f"{json.dumps(obj.get('status'), indent=1)}\n--- operator log\n"
                    f"{self.operator.log_tail()}"
                )
            time.sleep(0.05)  # poll the API server against the deadline

    def ready_on(self, variant: str, timeout: float = 60) -> dict[str, Any]:
        def ok(obj: dict[str, Any]) -> bool:
            status = obj.get("status") or {}
            return bool(
                status.get("phase") == "Ready"
                and status.get("variant") == variant
                and status.get("observedGeneration") == obj["metadata"]["generation"]
            )

        result: dict[str, Any] = self.wait(ok, f"Ready on {variant}", timeout)
        return result

    def template_variant(self, role: str) -> str:
        (container,) = self.deployment(role)["spec"]["template"]["spec"]["containers"]
        return str(next(e["value"] for e in container["env"] if e["name"] == "MODEL_VARIANT"))


def install(kube: Kube, ns: str, *values: str) -> list[str]:
    """`helm install` (kwok scenario, operator on, 2 API and 2 consumer replicas); returns the
    arguments of the chart's operator container."""
    kube.helm(
        "install", RELEASE, str(CHART), "-n", ns, "-f", str(KWOK_VALUES),
        "--set", "operator.enabled=true", "--set", "operator.probePods=false",
        "--set", "api.replicaCount=2", "--set", "consumer.replicaCount=2", *values,
        "--wait", "--timeout=240s", timeout=300,
    )  # fmt: skip
    deployment = json.loads(
        kube.kubectl("get", "deployment", ACCOUNT, "-n", ns, "-o", "json").stdout
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [str(a) for a in container["args"]]
