"""Open Inference Protocol (v2) bodies: model metadata and inference on an FP32 [n, F] tensor.

Model names are the variants. The output ``probabilities`` is [n, 2] like the ONNX graph's:
column 1 is the spike probability, column 0 its complement.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from volatility.api.decode import N_FEATURES, InputError, parse_json, tensor_to_array
from volatility.api.jsonio import dumps
from volatility.api.metrics import ApiMetrics
from volatility.api.registry import Served
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
_REQUEST_KEYS: Final = frozenset({"id", "parameters", "inputs", "outputs"})


def model_metadata(name: str, model: Model) -> V2ModelMetadata:
    return V2ModelMetadata(
        name=name,
        versions=[model.contract.version],
        platform=PLATFORM,
        inputs=[V2TensorMetadata(name=SCORING_INPUT, datatype=DATATYPE, shape=[-1, N_FEATURES])],
        outputs=[V2TensorMetadata(name=SCORING_OUTPUT, datatype=DATATYPE, shape=[-1, 2])],
    )


def _check_outputs(requested: object) -> None:
    if requested is None:
        return
    if not isinstance(requested, list):
        raise InputError(422, "expected an array", "outputs")
    for i, out in enumerate(requested):
        if not isinstance(out, dict) or out.get("name") != SCORING_OUTPUT:
            raise InputError(422, f"the only output is {SCORING_OUTPUT!r}", f"outputs[{i}].name")


def _tensor(doc: dict[str, Any], max_rows: int) -> np.ndarray:
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise InputError(422, f"expected exactly one input named {SCORING_INPUT!r}", "inputs")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise InputError(422, "expected a tensor object", "inputs[0]")
    unknown = [k for k in tensor if k not in ("name", "shape", "datatype", "data", "parameters")]
    if unknown:
        raise InputError(422, "unknown field", f"inputs[0].{unknown[0]}")
    if tensor.get("parameters") is not None and not isinstance(tensor["parameters"], dict):
        raise InputError(422, "expected an object", "inputs[0].parameters")
    if tensor.get("name") != SCORING_INPUT:
        raise InputError(422, f"the model's input is {SCORING_INPUT!r}", "inputs[0].name")
    if tensor.get("datatype") != DATATYPE:
        raise InputError(422, f"the input's datatype is {DATATYPE}", "inputs[0].datatype")
    return tensor_to_array(tensor.get("data"), tensor.get("shape"), "inputs[0]", max_rows)


def infer(served: Served, name: str, body: bytes, max_rows: int, metrics: ApiMetrics) -> bytes:
    """The JSON answer to an infer body; raises InputError or NotLoaded."""
    model = served.pick(name)
    doc = parse_json(body)
    if type(doc) is not dict:
        raise InputError(422, "expected a JSON object with inputs", "body")
    unknown = [k for k in doc if k not in _REQUEST_KEYS]
    if unknown:
        raise InputError(422, "unknown field", unknown[0])
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputError(422, "expected a string", "id")
    if doc.get("parameters") is not None and not isinstance(doc["parameters"], dict):
        raise InputError(422, "expected an object", "parameters")
    _check_outputs(doc.get("outputs"))
    features = _tensor(doc, max_rows)
    spike = score(model, features, metrics, lambda i: f"inputs[0].data row {i}")
    probabilities = np.empty((len(spike), 2), dtype=np.float32)
    probabilities[:, 1] = spike
    np.subtract(np.float32(1.0), spike, out=probabilities[:, 0])
    answer: dict[str, Any] = {"model_name": name, "model_version": model.contract.version}
    if request_id is not None:
        answer["id"] = request_id
    answer["outputs"] = [
        {
            "name": SCORING_OUTPUT,
            "shape": [len(spike), 2],
            "datatype": DATATYPE,
            "data": probabilities.ravel().tolist(),
        }
    ]
    return dumps(answer)
