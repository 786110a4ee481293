"""Open Inference Protocol (v2) bodies: model metadata and inference on an FP32 [n, F] tensor.

Model names are the variants. The output ``probabilities`` is [n, 2] like the ONNX graph's:
column 1 is the spike probability, column 0 its complement.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import numpy as np

from volatility.api.decode import (
    N_FEATURES,
    InputError,
    binary_to_array,
    parse_json,
    tensor_rows,
    tensor_to_array,
)
from volatility.api.jsonio import dumps
from volatility.api.metrics import ApiMetrics
from volatility.api.registry import NotLoaded, Served
from volatility.api.schemas import (
    DATATYPE,
    SCORING_INPUT,
    SCORING_OUTPUT,
    V2ModelMetadata,
    V2TensorMetadata,
)
from volatility.api.scorer import score
from volatility.scoring.model import Model

PLATFORM: Final = "onnxruntime_onnx"
# model_name: what KServe's client sends (it must name the model of the path).
_REQUEST_KEYS: Final = frozenset({"id", "model_name", "parameters", "inputs", "outputs"})
_TENSOR_KEYS: Final = frozenset({"name", "shape", "datatype", "data", "parameters"})
# The binary tensor extension's parameters.
BINARY_SIZE: Final = "binary_data_size"
BINARY_OUTPUT: Final = "binary_data_output"
BINARY_DATA: Final = "binary_data"
# Parameters asking for what this server does not do: refused rather than ignored.
_UNSUPPORTED: Final = {
    "shared_memory_region": "shared-memory tensors are not supported; send the data in the body",
    "classification": "the classification extension is not supported",
}


class Reply(NamedTuple):
    """An infer answer: JSON, or (binary extension) JSON of ``json_length`` bytes then tensors."""

    body: bytes
    json_length: int | None = None


def model_metadata(name: str, model: Model) -> V2ModelMetadata:
    return V2ModelMetadata(
        name=name,
        versions=[model.contract.version],
        platform=PLATFORM,
        inputs=[V2TensorMetadata(name=SCORING_INPUT, datatype=DATATYPE, shape=[-1, N_FEATURES])],
        outputs=[V2TensorMetadata(name=SCORING_OUTPUT, datatype=DATATYPE, shape=[-1, 2])],
    )


def _parameters(value: object, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise InputError(422, "expected an object", field)
    for key, why in _UNSUPPORTED.items():
        if key in value:
            raise InputError(422, why, f"{field}.{key}")
    return value


def _flag(parameters: dict[str, Any], key: str, field: str) -> bool | None:
    value = parameters.get(key)
    if value is not None and type(value) is not bool:
        raise InputError(422, "expected true or false", f"{field}.{key}")
    return value


def _binary_output(doc: dict[str, Any]) -> bool:
    """Whether the answer's tensor goes in binary: the request's default, or the output's own."""
    binary = bool(
        _flag(_parameters(doc.get("parameters"), "parameters"), BINARY_OUTPUT, "parameters")
    )
    requested = doc.get("outputs")
    if requested is None:
        return binary
    if not isinstance(requested, list):
        raise InputError(422, "expected an array", "outputs")
    for i, out in enumerate(requested):
        if not isinstance(out, dict) or out.get("name") != SCORING_OUTPUT:
            raise InputError(422, f"the only output is {SCORING_OUTPUT!r}", f"outputs[{i}].name")
        field = f"outputs[{i}].parameters"
        own = _flag(_parameters(out.get("parameters"), field), BINARY_DATA, field)
        if own is not None:
            binary = own
    return binary


def _tensor(
    doc: dict[str, Any], max_rows: int, body: bytes | bytearray, json_length: int | None
) -> np.ndarray:
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise InputError(422, f"expected exactly one input named {SCORING_INPUT!r}", "inputs")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise InputError(422, "expected a tensor object", "inputs[0]")
    unknown = [k for k in tensor if k not in _TENSOR_KEYS]
    if unknown:
        raise InputError(422, "unknown field", f"inputs[0].{unknown[0]}")
    parameters = _parameters(tensor.get("parameters"), "inputs[0].parameters")
    if tensor.get("name") != SCORING_INPUT:
        raise InputError(422, f"the model's input is {SCORING_INPUT!r}", "inputs[0].name")
    if tensor.get("datatype") != DATATYPE:
        raise InputError(422, f"the input's datatype is {DATATYPE}", "inputs[0].datatype")
    binary = len(body) - json_length if json_length is not None else 0
    if BINARY_SIZE not in parameters:
        if binary:
            raise InputError(
                422,
                f"{binary} bytes follow the JSON header but no input declares binary data",
                "body",
            )
        return tensor_to_array(tensor.get("data"), tensor.get("shape"), "inputs[0]", max_rows)
    field = f"inputs[0].parameters.{BINARY_SIZE}"
    size = parameters[BINARY_SIZE]
    if type(size) is not int or size < 0:
        raise InputError(422, "expected a byte count", field)
    if "data" in tensor:
        raise InputError(422, f"give data or parameters.{BINARY_SIZE}, not both", "inputs[0].data")
    if json_length is None:
        raise InputError(
            422,
            "binary data needs the Inference-Header-Content-Length header (the JSON part's length)",
            field,
        )
    rows = tensor_rows(tensor.get("shape"), "inputs[0]", max_rows)
    expected = rows * N_FEATURES * 4
    if size != expected:
        raise InputError(
            422, f"{size} bytes do not hold shape [{rows}, {N_FEATURES}] of FP32", field
        )
    if binary != size:
        raise InputError(422, f"{binary} bytes follow the JSON header, {size} declared", field)
    return binary_to_array(body, json_length, rows, "inputs[0]")


def split_binary(
    body: bytes | bytearray, header: str | None
) -> tuple[bytes | bytearray, int | None]:
    """The JSON part of a body and, when the binary extension is used, its length."""
    if header is None:
        return body, None
    if not (header.isascii() and header.isdigit()):
        raise InputError(400, "must be a decimal byte count", "Inference-Header-Content-Length")
    length = int(header)
    if not 0 < length <= len(body):
        raise InputError(
            400,
            f"{length} is not within the body's {len(body)} bytes",
            "Inference-Header-Content-Length",
        )
    return body[:length], length


def _check_model(doc: dict[str, Any], name: str) -> None:
    named = doc.get("model_name")
    if named is not None and named != name:
        raise InputError(422, f"names {named!r} but the request is for {name!r}", "model_name")


def infer(
    served: Served,
    name: str,
    version: str | None,
    body: bytes | bytearray,
    header: str | None,
    max_rows: int,
    metrics: ApiMetrics,
) -> Reply:
    """The answer to an infer body; raises InputError or NotLoaded.

    ``header`` is the Inference-Header-Content-Length of the binary tensor extension, if sent.
    """
    model = pick_version(served, name, version)
    head, json_length = split_binary(body, header)
    doc = parse_json(head, max_rows)
    if type(doc) is not dict:
        raise InputError(422, "expected a JSON object with inputs", "body")
    unknown = [k for k in doc if k not in _REQUEST_KEYS]
    if unknown:
        raise InputError(422, "unknown field", unknown[0])
    _check_model(doc, name)
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputError(422, "expected a string", "id")
    binary_out = _binary_output(doc)
    features = _tensor(doc, max_rows, body, json_length)
    spike = score(model, features, metrics, lambda i: f"inputs[0].data row {i}")
    probabilities = np.empty((len(spike), 2), dtype=np.float32)
    probabilities[:, 1] = spike
    np.subtract(np.float32(1.0), spike, out=probabilities[:, 0])
    answer: dict[str, Any] = {"model_name": name, "model_version": model.contract.version}
    if request_id is not None:
        answer["id"] = request_id
    output: dict[str, Any] = {
        "name": SCORING_OUTPUT,
        "shape": [len(spike), 2],
        "datatype": DATATYPE,
    }
    answer["outputs"] = [output]
    if not binary_out:
        output["data"] = probabilities.ravel().tolist()
        return Reply(dumps(answer))
    raw = probabilities.astype("<f4", copy=False).tobytes()
    output["parameters"] = {BINARY_SIZE: len(raw)}
    head = dumps(answer)
    return Reply(head + raw, len(head))


def pick_version(served: Served, name: str, version: str | None) -> Model:
    """The model ``name``; when a version is given it must be the one loaded (NotLoaded)."""
    model = served.pick(name)
    if version is not None and version != model.contract.version:
        raise NotLoaded(
            f"model {name!r} has no version {version!r} (serving {model.contract.version!r})"
        )
    return model
