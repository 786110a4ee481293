"""The Kubernetes API as the operator uses it: read workloads and pods, set the variant of a
pod template, write a ModelVariant's status. Blocking calls (the official client); the kopf
handlers run them in threads.

Objects come back as plain dicts in the API's own (camelCase) shape, which is what the pure
modules take.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, cast

from volatility_operator.resource import GROUP, KIND, PLURAL, VARIANT_ENV, VERSION

COMPONENT = "volatility-operator"

# (connect, read) seconds of every call: a stuck connection must fail, not hang the operator.
TIMEOUT = (5.0, 30.0)
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class Kube:
    """One namespace's view; credentials from the pod's ServiceAccount or $KUBECONFIG."""

    def __init__(self, namespace: str) -> None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        self.namespace = namespace
        self._api = client.ApiClient()
        self._apps = client.AppsV1Api(self._api)
        self._core = client.CoreV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)
        self._not_found = client.ApiException

    def _plain(self, obj: Any) -> dict[str, Any]:
        plain = self._api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return cast(dict[str, Any], plain)

    def resource(self, name: str) -> dict[str, Any] | None:
        try:
            obj = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=TIMEOUT
            )
        except self._not_found as exc:
            if exc.status == 404:
                return None
            raise
        return cast(dict[str, Any], obj)

    def resource_versions(self) -> dict[str, str]:
        """name -> resourceVersion of every ModelVariant in the namespace, read directly."""
        listed = cast(
            dict[str, Any],
            self._custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, _request_timeout=TIMEOUT
            ),
        )
        return {
            o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listed.get("items", [])
        }

    def deployment(self, name: str) -> dict[str, Any] | None:
        try:
            return self._plain(
                self._apps.read_namespaced_deployment(
                    name, self.namespace, _request_timeout=TIMEOUT
                )
            )
        except self._not_found as exc:
            if exc.status == 404:
                return None
            raise

    def pods(self, deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
        labels = deployment["spec"]["selector"].get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = self._core.list_namespaced_pod(
            self.namespace, label_selector=selector, _request_timeout=TIMEOUT
        )
        return [self._plain(p) for p in pods.items]

    def set_variant(self, deployment: Mapping[str, Any], variant: str) -> None:
        """Set MODEL_VARIANT in every container of the pod template that has it: a rollout."""
        containers = deployment["spec"]["template"]["spec"]["containers"]
        names = [
            c["name"]
            for c in containers
            if any(e.get("name") == VARIANT_ENV for e in c.get("env") or [])
        ] or [containers[0]["name"]]
        body = {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": n, "env": [{"name": VARIANT_ENV, "value": variant}]}
                            for n in names
                        ]
                    }
                }
            }
        }
        self._apps.patch_namespaced_deployment(
            deployment["metadata"]["name"],
            self.namespace,
            body,
            _content_type=STRATEGIC,
            _request_timeout=TIMEOUT,
        )

    def post_event(self, obj: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        """A Kubernetes Event about ``obj`` (shown by `kubectl describe` and `get events`)."""
        meta = obj["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body: dict[str, Any] = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", f"{GROUP}/{VERSION}"),
                "kind": obj.get("kind", KIND),
                "name": meta["name"],
                "namespace": self.namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._core.create_namespaced_event(
            self.namespace,
            body,  # type: ignore[arg-type]
            _request_timeout=TIMEOUT,
        )

    def patch_status(self, name: str, status: Mapping[str, Any]) -> None:
        self._custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, name, {"status": dict(status)},
            _content_type=MERGE, _request_timeout=TIMEOUT,
        )  # fmt: skip
