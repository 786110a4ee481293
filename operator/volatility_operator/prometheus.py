"""Live signals for automatic rollback, read from Prometheus' HTTP query API."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from volatility.names import GROUP_CONSUMER, METRIC_NAMESPACE, ROLE_ACTIVE, ROLE_SHADOW
from volatility_operator.resource import Signal

NS = METRIC_NAMESPACE
#: Labelled predictions a live figure needs before it may drive a rollback.
LIVE_MIN_LABELLED = 200


def queries(selector: str = "", window: str = "1m") -> dict[Signal, str]:
    """PromQL per signal; ``selector`` (e.g. `namespace="prod"`) narrows every series."""

    def sel(*matchers: str) -> str:
        inner = ",".join(m for m in (*matchers, selector) if m)
        return "{" + inner + "}" if inner else ""

    def live(role: str) -> str:
        role_sel = sel(f'role="{role}"')
        return f"{NS}_live_pr_auc{role_sel} and {NS}_live_labelled{role_sel} >= {LIVE_MIN_LABELLED}"

    requests = f"{NS}_http_requests_total"
    five_xx = 'status=~"5.."'
    group = f'group="{GROUP_CONSUMER}"'
    return {
        "apiLatencyP95Seconds": (
            f"histogram_quantile(0.95, sum by (le) "
            f"(rate({NS}_http_request_duration_seconds_bucket{sel()}[{window}])))"
        ),
        "errorRatio": (
            # No 5xx series at all means a ratio of 0, not missing data.
            f"(sum(rate({requests}{sel(five_xx)}[{window}])) or vector(0))"
            f" / sum(rate({requests}{sel()}[{window}]))"
        ),
        "consumerLag": f"sum({NS}_consumer_lag{sel(group)})",
        # How far the serving variant's live PR-AUC trails the shadow's, on the product where
        # it trails most; only figures backed by LIVE_MIN_LABELLED labelled predictions count.
        "liveQualityGap": (
            f"max(max by (product) ({live(ROLE_SHADOW)}) - on (product) max by (product) "
            f"({live(ROLE_ACTIVE)}))"
        ),
    }


def parse_result(body: bytes) -> float | None:
    """The value of a one-element vector or a scalar; None when there is no (finite) data."""
    doc = json.loads(body)
    if doc.get("status") != "success":
        return None
    data = doc.get("data") or {}
    result: Any = data.get("result")
    if data.get("resultType") == "scalar":
        value = float(result[1])
    elif data.get("resultType") == "vector" and result:
        value = float(result[0]["value"][1])
    else:
        return None
    return value if math.isfinite(value) else None


def sample(
    base_url: str, exprs: Mapping[Signal, str], timeout: float = 5.0
) -> dict[Signal, float | None]:
    """Each signal's current value; None for a signal Prometheus has no data for or fails on."""
    out: dict[Signal, float | None] = {}
    for signal, expr in exprs.items():
        url = f"{base_url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
                out[signal] = parse_result(response.read())
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError):
            out[signal] = None
    return out
