"""The official Open Inference Protocol clients (Triton's and KServe's) against `volatility serve`.

Health, metadata and inference (single row and batch, JSON and the binary tensor extension) for
both variants, through each client's own request building and answer parsing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from tritonclient.utils import InferenceServerException

from tests.unit.api.conftest import feature_rows
from tests.unit.api.serve_process import ServeProcess, serve
from volatility.features.spec import FEATURE_NAMES
from volatility.names import VARIANTS, VariantName
from volatility.scoring.model import Model

N = len(FEATURE_NAMES)
ROW_COUNTS = [1, 64]


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[ServeProcess]:
    with serve(model_dir) as process:
        yield process


@pytest.fixture(scope="module")
def triton_client(server: ServeProcess) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    yield client
    client.close()


def _check_probabilities(probabilities: np.ndarray, model: Model, rows: np.ndarray) -> None:
    assert probabilities.shape == (len(rows), 2)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities[:, 1], model.score(rows), atol=1e-7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_triton_health_and_server_metadata(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    meta = triton_client.get_server_metadata()
    assert meta["name"] == "volatility"
    assert meta["extensions"] == ["binary_tensor_data"]


@pytest.mark.parametrize("name", VARIANTS)
def test_triton_model_metadata_and_versions(
    triton_client: triton.InferenceServerClient,
    models: dict[VariantName, Model],
    name: VariantName,
) -> None:
    version = models[name].contract.version
    assert triton_client.is_model_ready(name)
    assert triton_client.is_model_ready(name, version)
    assert not triton_client.is_model_ready(name, "no-such-version")
    for meta in (
        triton_client.get_model_metadata(name),
        triton_client.get_model_metadata(name, version),
    ):
        assert meta["name"] == name
        assert meta["versions"] == [version]
        assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, N]}]
        assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("count", ROW_COUNTS)
@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize(
    "binary_out", [None, True, False], ids=["default-out", "bin-out", "json-out"]
)
@pytest.mark.parametrize("versioned", [False, True], ids=["latest", "versioned"])
def test_triton_infer(
    triton_client: triton.InferenceServerClient,
    models: dict[VariantName, Model],
    name: VariantName,
    count: int,
    binary_in: bool,
    binary_out: bool | None,
    versioned: bool,
) -> None:
    rows = feature_rows(count, seed=count)
    tensor = triton.InferInput("features", [count, N], "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary_in)
    outputs = (
        None
        if binary_out is None
        else [triton.InferRequestedOutput("probabilities", binary_data=binary_out)]
    )
    version = models[name].contract.version if versioned else ""
    result = triton_client.infer(
        name, [tensor], model_version=version, outputs=outputs, request_id="r-7"
    )
    probabilities = result.as_numpy("probabilities")
    assert probabilities is not None
    _check_probabilities(probabilities, models[name], rows)
    response = result.get_response()
    assert response["id"] == "r-7"
    assert response["model_version"] == models[name].contract.version


def test_triton_sees_our_error_messages(triton_client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="'gpt' is not loaded"):
        triton_client.get_model_metadata("gpt")
    tensor = triton.InferInput("features", [1, N], "FP32")
    tensor.set_data_from_numpy(feature_rows(1))
    with pytest.raises(InferenceServerException, match="'gpt' is not loaded"):
        triton_client.infer("gpt", [tensor])
    with pytest.raises(InferenceServerException, match="has no version 'v0'"):
        triton_client.infer("baseline", [tensor], model_version="v0")
    with pytest.raises(InferenceServerException, match="no such route"):
        triton_client.get_model_config("baseline")
    bad = feature_rows(1)
    bad[0, 3] = np.nan
    tensor.set_data_from_numpy(bad)
    with pytest.raises(InferenceServerException, match=r"must be finite \(row 0, column 3\)"):
        triton_client.infer("baseline", [tensor])


def _kserve(coroutine_factory: Any) -> Any:
    async def run() -> Any:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            return await coroutine_factory(client)
        finally:
            await client.close()

    return asyncio.run(run())


@pytest.mark.parametrize("name", VARIANTS)
def test_kserve_health(server: ServeProcess, name: VariantName) -> None:
    async def calls(client: InferenceRESTClient) -> tuple[bool, bool, bool, bool]:
        return (
            await client.is_server_live(server.url),
            await client.is_server_ready(server.url),
            await client.is_model_ready(server.url, name),
            await client.is_model_ready(server.url, "gpt"),
        )

    assert _kserve(calls) == (True, True, True, False)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("count", ROW_COUNTS)
@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_out", [False, True], ids=["json-out", "bin-out"])
def test_kserve_infer(
    server: ServeProcess,
    models: dict[VariantName, Model],
    name: VariantName,
    count: int,
    binary_in: bool,
    binary_out: bool,
) -> None:
    rows = feature_rows(count, seed=100 + count)
    tensor = InferInput("features", [count, N], "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary_in)
    request = InferRequest(
        model_name=name,
        infer_inputs=[tensor],
        request_id="k-1",
        request_outputs=[RequestedOutput("probabilities", {"binary_data": binary_out})],
    )

    async def call(client: InferenceRESTClient) -> Any:
        return await client.infer(server.url, request, model_name=name)

    response = _kserve(call)
    assert response.model_name == name
    assert response.id == "k-1"
    (output,) = response.outputs
    assert output.name == "probabilities"
    _check_probabilities(output.as_numpy(), models[name], rows)


def test_kserve_sees_our_error_messages(server: ServeProcess) -> None:
    tensor = InferInput("features", [1, N + 1], "FP32")
    tensor.set_data_from_numpy(np.ones((1, N + 1), dtype=np.float32), binary_data=False)
    request = InferRequest(model_name="baseline", infer_inputs=[tensor])

    async def call(client: InferenceRESTClient) -> Any:
        return await client.infer(server.url, request, model_name="baseline")

    with pytest.raises(Exception, match=f"second dimension must be {N}") as caught:
        _kserve(call)
    assert "422" in str(caught.value)
