"""Health, readiness, version, metrics, docs and the latest-predictions view."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.api.conftest import api_settings, feature_rows, named
from volatility import __version__
from volatility.api.app import create_app
from volatility.api.settings import ApiSettings
from volatility.features.spec import FEATURE_NAMES, FEATURE_SPEC_VERSION
from volatility.names import VariantName
from volatility.scoring.contract import model_path
from volatility.settings import DEFAULT_MODEL_DIR, ModelSettings


def test_health_and_ready(client: TestClient, variant: VariantName) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert ready.json()["variant"] == variant


def test_version_describes_the_active_model(
    client: TestClient, variant: VariantName, model_dir: Path
) -> None:
    body = client.get("/version").json()
    digest = hashlib.sha256(model_path(model_dir, variant).read_bytes()).hexdigest()
    assert body["variant"] == variant
    assert body["model_sha256"] == digest
    assert body["feature_names"] == list(FEATURE_NAMES)
    assert body["feature_spec_version"] == FEATURE_SPEC_VERSION
    assert body["tick_source"] == "none"
    assert body["package_version"] == __version__
    assert set(body["loaded"]) == {"baseline", "ml"}
    assert body["loaded"][variant]["sha256"] == digest


def test_version_reports_tick_source_and_build(model_dir: Path) -> None:
    settings = api_settings(model_dir, build_revision="abc123")
    with TestClient(create_app(settings, tick_source="replay")) as c:
        body = c.get("/version").json()
    assert (body["tick_source"], body["build_revision"]) == ("replay", "abc123")


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text exposition."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_rows_scores_and_models(
    client: TestClient, variant: VariantName
) -> None:
    before = client.get("/metrics").text
    client.post("/predict", json={"instances": named(feature_rows(7))})
    client.post("/predict", json={"features": {"x": 1}})
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text

    def delta(name: str, **labels: str) -> float:
        return _sample(text, name, **labels) - _sample(before, name, **labels)

    ok = {"route": "/predict", "method": "POST", "status": "200"}
    bad = {**ok, "status": "422"}
    assert delta("volatility_http_requests_total", **ok) == 1
    assert delta("volatility_http_requests_total", **bad) == 1
    assert delta("volatility_http_request_duration_seconds_count", **ok) == 1
    assert 'le="0.0001"' in text  # the fine buckets
    assert delta("volatility_api_rows_scored_total", model_variant=variant) == 7
    assert delta("volatility_api_inference_seconds_count", model_variant=variant) == 1
    assert delta("volatility_api_score_count", model_variant=variant) == 7
    assert delta("volatility_api_score_bucket", model_variant=variant, le="+Inf") == 7
    assert _sample(text, "volatility_api_model_loaded", model_variant="baseline") == 1
    assert _sample(text, "volatility_api_model_loaded", model_variant="ml") == 1
    assert _sample(text, "volatility_api_model_active", model_variant=variant) == 1
    assert _sample(text, "volatility_api_model_info", model_variant=variant) == 1


def test_unknown_paths_share_one_metric_series(client: TestClient) -> None:
    assert client.get("/no/such/path").status_code == 404
    text = client.get("/metrics").text
    assert _sample(text, "volatility_http_requests_total", route="unmatched", status="404") >= 1
    assert "/no/such/path" not in text


def test_openapi_and_docs(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/predict", "/v2/models/{name}/infer", "/version", "/predictions/latest"):
        assert path in schema["paths"]
    row = schema["components"]["schemas"]["FeatureRow"]
    assert row["required"] == list(FEATURE_NAMES)
    assert row["additionalProperties"] is False
    assert client.get("/docs").status_code == 200


def test_shipped_models_serve_from_a_checkout() -> None:
    """Defaults (no settings): the models under models/artifacts."""
    settings = ApiSettings(models=ModelSettings(variant="baseline", dir=DEFAULT_MODEL_DIR))
    with TestClient(create_app(settings)) as c:
        assert c.get("/ready").status_code == 200
        response = c.post("/predict", json={"features": named(feature_rows(1))[0]})
        assert response.status_code == 200
        assert response.json()["variant"] == "baseline"


def test_missing_active_model_fails_start_up(tmp_path: Path) -> None:
    app = create_app(api_settings(tmp_path, "ml"))
    with pytest.raises(FileNotFoundError, match="no ml model"), TestClient(app):
        pass
