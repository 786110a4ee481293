"""Fitted models as ONNX graphs that honour the scoring contract, checked for parity."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from volatility.features.spec import FEATURE_NAMES
from volatility.scoring.contract import INPUT_NAME, PROBABILITIES
from volatility_training.candidates import LOG_COLUMNS, LOG_EPS, FittedModel

PARITY_TOLERANCE = 1e-5
_LOGGED = "log_features"
_OPSETS = {"": 17, "ai.onnx.ml": 3}


class ParityError(AssertionError):
    """The ONNX graph and the in-memory model disagree beyond the tolerance."""


def _log_nodes() -> list[Any]:
    """features -> log_features: ln(|x| + eps) on LOG_COLUMNS, the rest passed through."""
    from onnx import TensorProto, helper

    mask = [i in LOG_COLUMNS for i in range(len(FEATURE_NAMES))]
    return [
        helper.make_node(
            "Constant",
            [],
            ["log_mask"],
            value=helper.make_tensor("log_mask_v", TensorProto.BOOL, [len(mask)], mask),
        ),
        helper.make_node(
            "Constant",
            [],
            ["log_eps"],
            value=helper.make_tensor("log_eps_v", TensorProto.FLOAT, [1], [LOG_EPS]),
        ),
        helper.make_node("Abs", [INPUT_NAME], ["abs_features"]),
        helper.make_node("Add", ["abs_features", "log_eps"], ["shifted_features"]),
        helper.make_node("Log", ["shifted_features"], ["logged_features"]),
        helper.make_node("Where", ["log_mask", "logged_features", INPUT_NAME], [_LOGGED]),
    ]


def fitted_to_onnx(model: FittedModel, metadata: Mapping[str, str]) -> Any:
    """The estimator converted by skl2onnx, log transform prepended, only ``probabilities`` out."""
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    converted = convert_sklearn(
        model.estimator,
        name="volatility_ml",
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURE_NAMES)]))],
        options={"zipmap": False},
        target_opset=dict(_OPSETS),
    )
    graph = converted.graph
    nodes = list(graph.node)
    if model.candidate.log_inputs:
        for node in nodes:
            for k, name in enumerate(node.input):
                if name == INPUT_NAME:
                    node.input[k] = _LOGGED
        nodes = _log_nodes() + nodes
    if PROBABILITIES not in [o.name for o in graph.output]:
        raise ValueError(f"skl2onnx produced no {PROBABILITIES!r} output")
    new_graph = helper.make_graph(
        nodes,
        "volatility_ml",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, len(FEATURE_NAMES)])],
        [helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, [None, 2])],
        initializer=list(graph.initializer),
    )
    # skl2onnx may list a domain twice; keep one entry per domain at the highest version.
    opsets: dict[str, int] = {}
    for op in converted.opset_import:
        opsets[op.domain] = max(opsets.get(op.domain, 0), op.version)
    onnx_model = helper.make_model(
        new_graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
        producer_name="volatility",
    )
    onnx_model.ir_version = converted.ir_version
    helper.set_model_props(onnx_model, dict(metadata))
    from onnx import checker

    checker.check_model(onnx_model)
    return onnx_model


def onnx_probabilities(model_bytes: bytes, features: np.ndarray) -> np.ndarray:
    """Spike probabilities from an ONNX graph through onnxruntime, as served."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run([PROBABILITIES], {INPUT_NAME: features.astype(np.float32)})
    return np.asarray(probabilities, dtype=np.float64)[:, 1]


def assert_parity(
    model_bytes: bytes,
    in_memory: Callable[[np.ndarray], np.ndarray],
    features: np.ndarray,
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """Raise ParityError unless ONNX and in-memory probabilities agree; return the largest gap."""
    # Both sides see the float32 values that are served.
    x32 = features.astype(np.float32)
    served = onnx_probabilities(model_bytes, x32)
    gap = float(np.max(np.abs(served - in_memory(x32.astype(np.float64)))))
    if not gap <= tolerance:
        raise ParityError(f"ONNX and in-memory probabilities differ by {gap:.3g} > {tolerance:g}")
    return gap
