"""Every class of bad input gets a 4xx naming what is wrong, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.unit.api.conftest import api_settings, feature_rows, named
from volatility.api.app import create_app
from volatility.features.spec import FEATURE_NAMES

ROW = named(feature_rows(1))[0]
N = len(FEATURE_NAMES)
MAX_ROWS = 50


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "routes"])
def strict(model_dir: Path, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """Small limits, so that oversized input is cheap to send; both scoring paths."""
    settings = api_settings(
        model_dir, max_batch_rows=MAX_ROWS, max_body_bytes=64 * 1024, fast_path=request.param
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _with(**changes: Any) -> dict[str, Any]:
    return {**ROW, **changes}


def _without(name: str) -> dict[str, Any]:
    return {k: v for k, v in ROW.items() if k != name}


# (body, the field the message must name)
INVALID_JSON_BODIES: list[tuple[Any, str]] = [
    ({"features": _with(rv_60s="1.5")}, "features.rv_60s"),
    ({"features": _with(rv_60s=True)}, "features.rv_60s"),
    ({"features": _with(rv_60s=None)}, "features.rv_60s"),
    ({"features": _with(rv_60s=[1.0])}, "features.rv_60s"),
    ({"features": _with(rv_60s={"v": 1})}, "features.rv_60s"),
    ({"features": _with(rv_60s=1e39)}, "features.rv_60s"),
    ({"features": _with(rv_60s=-(10**40))}, "features.rv_60s"),
    ({"features": _with(bogus=1.0)}, "features.bogus"),
    # Finite but outside the model's domain (log of a negative volatility): no score, no 5xx.
    ({"features": _with(rv_60s=-1.0)}, "features"),
    ({"instances": [ROW, ROW, _with(rv_60s=-5.0)]}, "instances[2]"),
    ({"features": _without("tick_rate_30s")}, "features.tick_rate_30s"),
    ({"features": {}}, "features.rv_10s"),
    ({"features": [1.0] * N}, "features"),
    ({"features": "x"}, "features"),
    ({"instances": [ROW, _with(range_60s="x")]}, "instances[1].range_60s"),
    ({"instances": [ROW, ROW, _without("rv_10s")]}, "instances[2].rv_10s"),
    ({"instances": [ROW, _with(extra=0)]}, "instances[1].extra"),
    ({"instances": [ROW, 7]}, "instances[1]"),
    ({"instances": [ROW, None]}, "instances[1]"),
    ({"instances": [[1.0] * N]}, "instances[0]"),
    ({"rows": [_with(rv_10s=False)]}, "rows[0].rv_10s"),
    ({"instances": ROW}, "instances"),
    ({"rows": "abc"}, "rows"),
    ({"features": ROW, "instances": [ROW]}, "features, instances"),
    ({"feature": ROW}, "feature"),
    ({}, "body"),
    ([ROW], "body"),
    ("features", "body"),
    (None, "body"),
    (3, "body"),
]


@pytest.mark.parametrize(("body", "field"), INVALID_JSON_BODIES)
def test_invalid_body_is_422_naming_the_field(strict: TestClient, body: Any, field: str) -> None:
    response = _raw(strict, json.dumps(body))
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


def _raw(client: TestClient, text: str, content_type: str = "application/json") -> Any:
    return client.post("/predict", content=text.encode(), headers={"content-type": content_type})


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_are_422(strict: TestClient, literal: str) -> None:
    text = json.dumps({"features": ROW}).replace(str(ROW["rv_60s"]), literal)
    response = _raw(strict, text)
    assert response.status_code == 422
    assert literal.lstrip("-") in response.json()["detail"]


def test_overflowing_literal_is_422_naming_the_field(strict: TestClient) -> None:
    # Python's JSON decoder turns 1e400 into infinity.
    text = json.dumps({"features": ROW}).replace(str(ROW["ret_mean_10s"]), "1e400")
    response = _raw(strict, text)
    assert response.status_code == 422
    assert "features.ret_mean_10s" in response.json()["detail"]


@pytest.mark.parametrize(
    "text", ["", "{", "{'features': 1}", '{"features": }', "\xff", '{"a": 1} x', "[" * MAX_ROWS]
)
def test_malformed_json_is_422(strict: TestClient, text: str) -> None:
    response = _raw(strict, text)
    assert response.status_code == 422, response.text
    assert "body" in response.json()["detail"]


@pytest.mark.parametrize(
    "text",
    [
        "[" * 50_000,
        '{"rows": [' + ",".join(["[]"] * (MAX_ROWS + 100)) + "]}",
        '{"rows": [' + ",".join(["{}"] * (MAX_ROWS + 100)) + "]}",
        '{"features": [' + ",".join(["0"] * (MAX_ROWS * N + 100)) + "]}",
    ],
    ids=["deep", "empty-arrays", "empty-objects", "values"],
)
def test_more_values_than_the_row_limit_allows_is_413_before_parsing(
    strict: TestClient, text: str
) -> None:
    response = _raw(strict, text)
    assert response.status_code == 413, response.text
    assert f"more than a request of {MAX_ROWS} rows holds" in response.json()["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_is_415(strict: TestClient, content_type: str) -> None:
    response = _raw(strict, json.dumps({"features": ROW}), content_type)
    assert response.status_code == 415
    assert "content-type" in response.json()["detail"]


def test_json_suffix_and_charset_are_accepted(strict: TestClient) -> None:
    for ctype in ("application/json; charset=utf-8", "application/vnd.volatility+json"):
        assert _raw(strict, json.dumps({"features": ROW}), ctype).status_code == 200


@pytest.mark.parametrize("key", ["instances", "rows"])
def test_batch_over_the_row_limit_is_413(strict: TestClient, key: str) -> None:
    response = strict.post("/predict", json={key: [ROW] * (MAX_ROWS + 1)})
    assert response.status_code == 413
    assert key in response.json()["detail"]
    assert strict.post("/predict", json={key: [ROW] * MAX_ROWS}).status_code == 200


def test_oversized_body_is_413(strict: TestClient) -> None:
    body = json.dumps({"instances": [ROW] * 200}).encode()
    assert len(body) > 64 * 1024
    response = strict.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_oversized_streamed_body_is_413(strict: TestClient) -> None:
    """Without a Content-Length the limit is enforced while reading."""
    chunk = json.dumps(ROW).encode() + b","

    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(200):
            yield chunk
        yield json.dumps(ROW).encode() + b"]}"

    response = strict.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_unknown_variant_query_is_422(strict: TestClient) -> None:
    response = strict.post("/predict?variant=gpt", json={"features": ROW})
    assert response.status_code == 422
    assert "variant" in response.json()["detail"]


def test_variant_not_loaded_is_404(tmp_path: Path, model_dir: Path) -> None:
    only_baseline = tmp_path / "models"
    (only_baseline / "baseline").mkdir(parents=True)
    (only_baseline / "baseline" / "model.onnx").write_bytes(
        (model_dir / "baseline" / "model.onnx").read_bytes()
    )
    with TestClient(create_app(api_settings(only_baseline))) as c:
        response = c.post("/predict?variant=ml", json={"features": ROW})
        assert response.status_code == 404
        assert "ml" in response.json()["detail"]
        assert c.get("/v2/models/ml").status_code == 404
        assert c.get("/version").json()["loaded"].keys() == {"baseline"}


V2_ROWS = feature_rows(2)
V2_FLAT = V2_ROWS.ravel().tolist()


def _infer(**tensor: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "features",
        "shape": [2, N],
        "datatype": "FP32",
        "data": V2_FLAT,
    }
    return {"inputs": [{**base, **tensor}]}


V2_INVALID: list[tuple[Any, str]] = [
    (_infer(datatype="INT64"), "inputs[0].datatype"),
    (_infer(name="x"), "inputs[0].name"),
    (_infer(shape=[2, N - 1]), "inputs[0].shape"),
    (_infer(shape=[2]), "inputs[0].shape"),
    (_infer(shape=[-1, N]), "inputs[0].shape"),
    (_infer(shape=[2.0, N]), "inputs[0].shape"),
    (_infer(shape=[3, N]), "inputs[0].data"),
    (_infer(data=V2_FLAT[:-1]), "inputs[0].data"),
    (_infer(data=[*V2_FLAT[:-1], "1"]), f"inputs[0].data[{2 * N - 1}]"),
    (_infer(data=[*V2_FLAT[:-1], None]), f"inputs[0].data[{2 * N - 1}]"),
    (_infer(data=[*V2_FLAT[:-1], 1e39]), f"inputs[0].data[{2 * N - 1}]"),
    (
        _infer(data=[V2_ROWS.tolist()[0], [*V2_ROWS.tolist()[1][:-1], True]]),
        "inputs[0].data[1][22]",
    ),
    (_infer(data=[V2_ROWS.tolist()[0], V2_ROWS.tolist()[1][:-1]]), "inputs[0].data[1]"),
    (_infer(data="x"), "inputs[0].data"),
    (_infer(bogus=1), "inputs[0].bogus"),
    (_infer(parameters=3), "inputs[0].parameters"),
    ({"inputs": []}, "inputs"),
    ({"inputs": [1]}, "inputs[0]"),
    ({"inputs": _infer()["inputs"] * 2}, "inputs"),
    ({**_infer(), "outputs": [{"name": "logits"}]}, "outputs[0].name"),
    ({**_infer(), "outputs": "probabilities"}, "outputs"),
    ({**_infer(), "id": 5}, "id"),
    ({**_infer(), "parameters": []}, "parameters"),
    ({**_infer(), "extra": 1}, "extra"),
    ([], "body"),
]


@pytest.mark.parametrize(("body", "field"), V2_INVALID)
def test_v2_invalid_infer_is_422_naming_the_field(
    strict: TestClient, body: Any, field: str
) -> None:
    response = strict.post(
        "/v2/models/baseline/infer",
        content=json.dumps(body),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]


def test_v2_too_many_rows_is_413(strict: TestClient) -> None:
    rows = MAX_ROWS + 1
    body = _infer(shape=[rows, N], data=[0.5] * (rows * N))
    assert strict.post("/v2/models/baseline/infer", json=body).status_code == 413


def test_v2_unknown_model_is_404(strict: TestClient) -> None:
    for path in ("/v2/models/gpt", "/v2/models/gpt/ready"):
        assert strict.get(path).status_code == 404
    response = strict.post("/v2/models/gpt/infer", json=_infer())
    assert response.status_code == 404
    assert "gpt" in response.json()["error"]


def test_v2_wrong_content_type_is_415(strict: TestClient) -> None:
    response = strict.post(
        "/v2/models/baseline/infer",
        content=json.dumps(_infer()),
        headers={"content-type": "text/csv"},
    )
    assert response.status_code == 415


async def _asgi_post(app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> Any:
    """One request straight through the ASGI interface, as any server would pass it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = sent[0]["status"]
    return status, json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


@pytest.mark.parametrize("length", ["1e3", "+12", " 12", "0x10", "١٢", "12, 12", ""])
@pytest.mark.parametrize("path", ["/predict", "/v2/models/baseline/infer"])
def test_non_decimal_content_length_is_400(strict: TestClient, length: str, path: str) -> None:
    body = json.dumps({"features": ROW}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", length.encode())]
    status, answer = strict.portal.call(_asgi_post, strict.app, path, headers, body)  # type: ignore[union-attr]
    assert status == 400
    assert "content-length" in (answer.get("detail") or answer.get("error"))


def test_conflicting_content_lengths_are_400(strict: TestClient) -> None:
    body = json.dumps({"features": ROW}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"content-length", b"1"),
    ]
    status, answer = strict.portal.call(_asgi_post, strict.app, "/predict", headers, body)  # type: ignore[union-attr]
    assert status == 400
    assert "given twice" in answer["detail"]


def test_compressed_body_is_415(strict: TestClient) -> None:
    response = strict.post("/predict", json={"features": ROW}, headers={"content-encoding": "gzip"})
    assert response.status_code == 415
    assert "gzip is not supported" in response.json()["detail"]


@pytest.mark.parametrize("bad", [True, False, "1", None, [1.0], 1e39, 10**400])
def test_v2_large_tensor_refuses_what_a_small_one_does(strict: TestClient, bad: Any) -> None:
    """Many values take another decoding path than a row's few: the same values are refused."""
    rows = 5  # 115 values: beyond the few-values path
    data: list[Any] = [0.5] * (rows * N)
    data[3 * N + 7] = bad
    body = _infer(shape=[rows, N], data=data)
    response = strict.post(
        "/v2/models/baseline/infer",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert f"inputs[0].data[{3 * N + 7}]" in response.json()["error"]
