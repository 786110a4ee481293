"""The Open Inference Protocol v2 endpoints, over plain HTTP, for both variants."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.unit.api.conftest import feature_rows
from volatility.features.spec import FEATURE_NAMES
from volatility.names import VARIANTS, VariantName
from volatility.scoring.model import Model

N = len(FEATURE_NAMES)


def test_server_health_and_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2").json()
    assert meta["name"] == "volatility"
    assert meta["version"]


@pytest.mark.parametrize("name", VARIANTS)
def test_model_metadata(
    client: TestClient, models: dict[VariantName, Model], name: VariantName
) -> None:
    response = client.get(f"/v2/models/{name}")
    assert response.status_code == 200
    assert response.json() == {
        "name": name,
        "versions": [models[name].contract.version],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, N]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}],
    }
    assert client.get(f"/v2/models/{name}/ready").json() == {"name": name, "ready": True}


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("nested", [False, True])
def test_infer_matches_the_model(
    client: TestClient, models: dict[VariantName, Model], name: VariantName, nested: bool
) -> None:
    rows = feature_rows(64, seed=11)
    data = rows.tolist() if nested else rows.ravel().tolist()
    request = {
        "id": "req-1",
        "inputs": [{"name": "features", "shape": [64, N], "datatype": "FP32", "data": data}],
        "outputs": [{"name": "probabilities"}],
    }
    response = client.post(f"/v2/models/{name}/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == name
    assert body["model_version"] == models[name].contract.version
    assert body["id"] == "req-1"
    (output,) = body["outputs"]
    assert output["name"] == "probabilities"
    assert output["datatype"] == "FP32"
    assert output["shape"] == [64, 2]
    probabilities = np.asarray(output["data"]).reshape(64, 2)
    np.testing.assert_allclose(probabilities[:, 1], models[name].score(rows), atol=1e-7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_infer_without_id_or_outputs(client: TestClient) -> None:
    request = {"inputs": [{"name": "features", "shape": [0, N], "datatype": "FP32", "data": []}]}
    body = client.post("/v2/models/baseline/infer", json=request).json()
    assert "id" not in body
    assert body["outputs"][0]["shape"] == [0, 2]
    assert body["outputs"][0]["data"] == []
