"""PromQL built from the services' metric names; answers parsed into one number or None."""

from __future__ import annotations

import json
import re

from prometheus_client import CollectorRegistry, generate_latest

from volatility import metrics
from volatility.api.metrics import ApiMetrics
from volatility_operator.prometheus import parse_result, queries


def test_queries_use_metrics_the_services_export() -> None:
    registry = CollectorRegistry()
    api = ApiMetrics(registry)
    api.observe_request("/predict", "POST", 503, 0.01)
    exported = generate_latest(registry).decode()
    q = queries('namespace="prod"')
    for series in re.findall(
        r"(volatility_http_\w+)\{", q["apiLatencyP95Seconds"] + q["errorRatio"]
    ):
        assert f"\n{series}{{" in exported, series
    assert 'status="503"' in exported  # the label the error ratio matches on
    assert 'namespace="prod"' in q["apiLatencyP95Seconds"]
    assert 'status=~"5.."' in q["errorRatio"]
    assert metrics.CONSUMER_LAG._name + "{" in q["consumerLag"]
    assert "{}" not in "".join(queries().values())


def test_parse_result_shapes() -> None:
    vector = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.25"]}]},
    }
    assert parse_result(json.dumps(vector).encode()) == 0.25
    empty = {"status": "success", "data": {"resultType": "vector", "result": []}}
    assert parse_result(json.dumps(empty).encode()) is None
    nan = {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "NaN"]}]}}
    assert parse_result(json.dumps(nan).encode()) is None
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}}
    assert parse_result(json.dumps(scalar).encode()) == 3.0
    assert parse_result(json.dumps({"status": "error"}).encode()) is None
