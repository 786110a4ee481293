"""Asking each pod what it serves: GET /version, the API's on its `http` port, the consumer's on
its `metrics` port; both answer JSON with `variant` and `model_version`.

Pods are reached on their pod IP and the port named in their spec; the chart's NetworkPolicies
admit the operator there.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Final

from volatility_operator.observed import Report
from volatility_operator.resource import Role

PORT_NAMES: Final[dict[Role, str]] = {"api": "http", "consumer": "metrics"}


def parse_version(body: bytes) -> Report:
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return Report(doc.get("variant"), doc.get("model_version"))


def pod_url(pod: Mapping[str, Any], role: Role) -> str | None:
    ip = (pod.get("status") or {}).get("podIP")
    wanted = PORT_NAMES[role]
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == wanted and ip:
                return f"http://{ip}:{port['containerPort']}/version"
    return None


def fetch(url: str, timeout: float = 2.0) -> Report:
    """One pod's report; an error in the report (never an exception) when it cannot answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - pod URL
            body = response.read()
    except (urllib.error.URLError, OSError) as exc:
        return Report(None, None, f"{url}: {exc}")
    try:
        return parse_version(body)
    except ValueError as exc:
        return Report(None, None, f"{url}: unreadable answer: {exc}")


def probe_pod(pod: Mapping[str, Any], role: Role, timeout: float = 2.0) -> Report:
    url = pod_url(pod, role)
    if url is None:
        return Report(None, None, f"no pod IP or no port named {PORT_NAMES[role]}")
    return fetch(url, timeout)
