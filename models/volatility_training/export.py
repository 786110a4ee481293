"""Fitted models as ONNX graphs that honour the scoring contract, checked for parity."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from volatility.features.spec import FEATURE_NAMES
from volatility.scoring.contract import INPUT_NAME, PROBABILITIES
from volatility_training.candidates import (
    LOG_COLUMNS,
    LOG_EPS,
    RATIO_PAIRS,
    FittedModel,
    Inputs,
)
from volatility_training.domain import domain_guard_nodes

PARITY_TOLERANCE = 1e-5
_TRANSFORMED = "model_input"
_UNGUARDED = "unguarded_probabilities"
_OPSETS = {"": 17, "ai.onnx.ml": 3}


class ParityError(AssertionError):
    """The ONNX graph and the in-memory model disagree beyond the tolerance."""


def _const(name: str, values: list[int] | list[float] | list[bool], dtype: int) -> Any:
    from onnx import helper

    tensor = helper.make_tensor(name + "_v", dtype, [len(values)], values)
    return helper.make_node("Constant", [], [name], value=tensor)


def _input_nodes(inputs: Inputs) -> tuple[list[Any], int]:
    """Nodes computing the candidate's transform of ``features`` into ``_TRANSFORMED``, and its
    width; the same arithmetic as `candidates.transform`, in float32."""
    from onnx import TensorProto, helper

    width = len(FEATURE_NAMES)
    num = [a for a, _ in RATIO_PAIRS]
    den = [b for _, b in RATIO_PAIRS]
    ratio_consts = [
        _const("ratio_num", num, TensorProto.INT64),
        _const("ratio_den", den, TensorProto.INT64),
    ]
    nodes = [_const("log_eps", [LOG_EPS], TensorProto.FLOAT)]
    if inputs == "raw_ratios":
        nodes += [
            *ratio_consts,
            helper.make_node("Gather", [INPUT_NAME, "ratio_num"], ["num_values"], axis=1),
            helper.make_node("Gather", [INPUT_NAME, "ratio_den"], ["den_values"], axis=1),
            helper.make_node("Add", ["den_values", "log_eps"], ["den_shifted"]),
            helper.make_node("Div", ["num_values", "den_shifted"], ["ratios"]),
            helper.make_node("Concat", [INPUT_NAME, "ratios"], [_TRANSFORMED], axis=1),
        ]
        return nodes, width + len(RATIO_PAIRS)
    mask = [i in LOG_COLUMNS for i in range(width)]
    logged = _TRANSFORMED if inputs == "log" else "logged_features"
    nodes += [
        _const("log_mask", mask, TensorProto.BOOL),
        # ln(x + eps) with no absolute value: a negative input has no log, as in numpy.
        helper.make_node("Add", [INPUT_NAME, "log_eps"], ["shifted_features"]),
        helper.make_node("Log", ["shifted_features"], ["log_all"]),
        helper.make_node("Where", ["log_mask", "log_all", INPUT_NAME], [logged]),
    ]
    if inputs == "log":
        return nodes, width
    nodes += [
        *ratio_consts,
        helper.make_node("Gather", [logged, "ratio_num"], ["log_num"], axis=1),
        helper.make_node("Gather", [logged, "ratio_den"], ["log_den"], axis=1),
        helper.make_node("Sub", ["log_num", "log_den"], ["log_ratios"]),
        helper.make_node("Concat", [logged, "log_ratios"], [_TRANSFORMED], axis=1),
    ]
    return nodes, width + len(RATIO_PAIRS)


def fitted_to_onnx(model: FittedModel, metadata: Mapping[str, str]) -> Any:
    """The candidate's transform, the estimator converted by skl2onnx, the domain guard; only
    ``probabilities`` out."""
    from onnx import TensorProto, checker, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    prefix, width = _input_nodes(model.candidate.inputs)
    converted = convert_sklearn(
        model.estimator,
        name="volatility_ml",
        initial_types=[(_TRANSFORMED, FloatTensorType([None, width]))],
        options={"zipmap": False},
        target_opset=dict(_OPSETS),
    )
    graph = converted.graph
    if PROBABILITIES not in [o.name for o in graph.output]:
        raise ValueError(f"skl2onnx produced no {PROBABILITIES!r} output")
    nodes = list(graph.node)
    for node in nodes:
        for k, name in enumerate(node.output):
            if name == PROBABILITIES:
                node.output[k] = _UNGUARDED
        for k, name in enumerate(node.input):
            if name == PROBABILITIES:
                node.input[k] = _UNGUARDED
    nodes = prefix + nodes + domain_guard_nodes(_UNGUARDED, PROBABILITIES)
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
