"""The Open Inference Protocol v2 endpoints, over plain HTTP, for both variants."""

from __future__ import annotations

import json
from typing import Any

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


def _tensor_request(rows: np.ndarray, **extra: Any) -> dict[str, Any]:
    tensor = {"name": "features", "shape": list(rows.shape), "datatype": "FP32"}
    return {"inputs": [{**tensor, "data": rows.ravel().tolist()}], **extra}


def test_infer_without_content_type_and_with_protocol_fields(
    client: TestClient, models: dict[VariantName, Model]
) -> None:
    rows = feature_rows(3, seed=5)
    body = _tensor_request(rows, model_name="ml", id="x", parameters={"priority": 1})
    response = client.post("/v2/models/ml/infer", content=json.dumps(body).encode())
    assert "content-type" not in response.request.headers
    assert response.status_code == 200, response.text
    probabilities = np.asarray(response.json()["outputs"][0]["data"]).reshape(3, 2)
    np.testing.assert_allclose(probabilities[:, 1], models["ml"].score(rows), atol=1e-7)


def test_infer_refuses_a_model_name_other_than_the_paths(client: TestClient) -> None:
    body = _tensor_request(feature_rows(1), model_name="ml")
    response = client.post("/v2/models/baseline/infer", json=body)
    assert response.status_code == 422
    assert "model_name" in response.json()["error"]


@pytest.mark.parametrize("name", VARIANTS)
def test_versioned_routes(
    client: TestClient, models: dict[VariantName, Model], name: VariantName
) -> None:
    version = models[name].contract.version
    base = f"/v2/models/{name}/versions/{version}"
    assert client.get(base).json()["versions"] == [version]
    assert client.get(f"{base}/ready").json() == {"name": name, "ready": True}
    rows = feature_rows(2, seed=9)
    body = client.post(f"{base}/infer", json=_tensor_request(rows)).json()
    assert body["model_version"] == version
    for path in ("", "/ready"):
        missing = client.get(f"/v2/models/{name}/versions/nope{path}")
        assert missing.status_code == 404
        assert "has no version 'nope'" in missing.json()["error"]
    missing = client.post(f"/v2/models/{name}/versions/nope/infer", json=_tensor_request(rows))
    assert missing.status_code == 404
    assert "has no version 'nope'" in missing.json()["error"]


def test_v2_404_and_405_are_protocol_errors(client: TestClient) -> None:
    response = client.get("/v2/models/baseline/config")
    assert response.status_code == 404
    assert response.json() == {"error": "no such route: /v2/models/baseline/config"}
    response = client.get("/v2/models/baseline/infer")
    assert response.status_code == 405
    assert "GET is not allowed on /v2/models/baseline/infer" in response.json()["error"]
    assert "POST" in response.headers["allow"]
    assert client.get("/no/such/route").json() == {"detail": "no such route: /no/such/route"}


def _binary_body(rows: np.ndarray, **parameters: Any) -> tuple[bytes, dict[str, str]]:
    raw = rows.astype("<f4").tobytes()
    tensor = {
        "name": "features",
        "shape": list(rows.shape),
        "datatype": "FP32",
        "parameters": {"binary_data_size": len(raw), **parameters},
    }
    head = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}}).encode()
    headers = {"inference-header-content-length": str(len(head))}
    return head + raw, headers


def test_binary_extension_in_and_out(client: TestClient, models: dict[VariantName, Model]) -> None:
    rows = feature_rows(5, seed=3)
    body, headers = _binary_body(rows)
    response = client.post("/v2/models/baseline/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    head = json.loads(response.content[:length])
    (output,) = head["outputs"]
    assert output["parameters"] == {"binary_data_size": 5 * 2 * 4}
    assert "data" not in output
    probabilities = np.frombuffer(response.content[length:], dtype="<f4").reshape(5, 2)
    np.testing.assert_allclose(probabilities[:, 1], models["baseline"].score(rows), atol=1e-7)


def _post_binary(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post("/v2/models/baseline/infer", content=body, headers=headers)


def test_binary_extension_errors_name_the_problem(client: TestClient) -> None:
    rows = feature_rows(2)
    body, headers = _binary_body(rows)
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (body[:-4], headers, 422, "declared"),
        (body + b"\0" * 4, headers, 422, "declared"),
        (body, {"inference-header-content-length": "x1"}, 400, "decimal"),
        (body, {"inference-header-content-length": str(len(body) + 1)}, 400, "within"),
        (body, {}, 422, "not valid JSON"),
    ]
    for data, head, status, words in cases:
        response = _post_binary(client, data, head)
        assert response.status_code == status, (head, response.text)
        assert words in response.json()["error"]
    # Declared binary without the header that says where the JSON ends.
    only_json = body[: int(headers["inference-header-content-length"])]
    response = _post_binary(client, only_json, {})
    assert response.status_code == 422
    assert "Inference-Header-Content-Length" in response.json()["error"]
    bad = rows.copy()
    bad[1, 4] = np.inf
    response = _post_binary(client, *_binary_body(bad))
    assert response.status_code == 422
    assert "must be finite (row 1, column 4)" in response.json()["error"]
    for parameters, words in (
        ({"binary_data_size": 8}, "do not hold shape"),
        ({"shared_memory_region": "r"}, "shared-memory tensors are not supported"),
    ):
        response = _post_binary(client, *_binary_body(rows, **parameters))
        assert response.status_code == 422
        assert words in response.json()["error"]
    (tensor,) = json.loads(only_json)["inputs"]
    tensor["data"] = rows.ravel().tolist()
    both = json.dumps({"inputs": [tensor]}).encode()
    raw = rows.astype("<f4").tobytes()
    response = _post_binary(client, both + raw, {"inference-header-content-length": str(len(both))})
    assert response.status_code == 422
    assert "not both" in response.json()["error"]


def test_json_body_with_trailing_bytes_is_refused(client: TestClient) -> None:
    head = json.dumps(_tensor_request(feature_rows(1))).encode()
    response = _post_binary(
        client, head + b"\0" * 8, {"inference-header-content-length": str(len(head))}
    )
    assert response.status_code == 422
    assert (
        "8 bytes follow the JSON header but no input declares binary data"
        in (response.json()["error"])
    )
