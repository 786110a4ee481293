"""Asking each pod what it serves: the API's /version, the consumer's model-info metric.

Pods are reached on their pod IP and the port named in their spec (`http` for the API,
`metrics` for the consumer); the chart's NetworkPolicies admit the operator there.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Final

from volatility.names import LABEL_SERVICE, LABEL_VARIANT, METRIC_NAMESPACE
from volatility_operator.observed import Report
from volatility_operator.resource import Role

# The consumer's `volatility_model_info{service, model_variant, version} 1` gauge.
MODEL_INFO_METRIC: Final = f"{METRIC_NAMESPACE}_model_info"
PORT_NAMES: Final[dict[Role, str]] = {"api": "http", "consumer": "metrics"}
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_model_info(text: str, service: str = "consumer") -> Report:
    """The variant and version in a Prometheus text exposition's model-info gauge."""
    for line in text.splitlines():
        if not line.startswith(MODEL_INFO_METRIC + "{"):
            continue
        labels_part, _, value = line[len(MODEL_INFO_METRIC) + 1 :].rpartition("}")
        if value.strip() not in ("1", "1.0"):
            continue
        labels = dict(_LABEL.findall(labels_part))
        if labels.get(LABEL_SERVICE) != service:
            continue
        return Report(labels.get(LABEL_VARIANT), labels.get("version"))
    return Report(None, None, f"no {MODEL_INFO_METRIC} for service {service}")


def parse_version(body: bytes) -> Report:
    doc = json.loads(body)
    return Report(doc.get("variant"), doc.get("model_version"))


def pod_url(pod: Mapping[str, Any], role: Role) -> str | None:
    ip = (pod.get("status") or {}).get("podIP")
    wanted = PORT_NAMES[role]
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == wanted and ip:
                path = "/version" if role == "api" else "/metrics"
                return f"http://{ip}:{port['containerPort']}{path}"
    return None


def fetch(url: str, role: Role, timeout: float = 2.0) -> Report:
    """One pod's report; an error in the report (never an exception) when it cannot answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - pod URL
            body = response.read()
    except (urllib.error.URLError, OSError) as exc:
        return Report(None, None, f"{url}: {exc}")
    try:
        if role == "api":
            return parse_version(body)
        return parse_model_info(body.decode("utf-8", "replace"))
    except (ValueError, AttributeError) as exc:
        return Report(None, None, f"{url}: unreadable answer: {exc}")


def probe_pod(pod: Mapping[str, Any], role: Role, timeout: float = 2.0) -> Report:
    url = pod_url(pod, role)
    if url is None:
        return Report(None, None, f"no pod IP or no port named {PORT_NAMES[role]}")
    return fetch(url, role, timeout)
