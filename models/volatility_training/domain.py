"""The input domain every shipped model enforces alike, as ONNX nodes and in numpy.

Every feature except the signed mean returns is a volatility, rate, spread, range, ratio or
duration: never negative. A row with a negative value there cannot come from the feature engine,
so each model answers NaN for it (the services turn a non-finite score into a 4xx naming the
row). Built into both graphs from one definition, the baseline and the ML variant refuse exactly
the same inputs, whichever features each one reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from volatility.features.spec import FEATURE_NAMES
from volatility.scoring.contract import INPUT_NAME

#: Columns that are never negative: every feature except the signed mean returns.
NON_NEGATIVE: tuple[int, ...] = tuple(
    i for i, name in enumerate(FEATURE_NAMES) if not name.startswith("ret_mean_")
)


def outside_domain(features: np.ndarray) -> np.ndarray:
    """Boolean per row: some never-negative feature is negative."""
    return np.asarray((np.asarray(features)[:, list(NON_NEGATIVE)] < 0).any(axis=1))


def guard_scores(features: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``scores`` with NaN on the rows outside the domain (the numpy twin of the graph)."""
    return np.where(outside_domain(features), np.nan, scores)


def domain_guard_nodes(probabilities_in: str, probabilities_out: str) -> list[Any]:
    """Nodes adding 0 (inside the domain) or NaN (outside) to each row of probabilities.

    guard = 0 * sqrt(min(0, min over never-negative columns)): sqrt of a negative is NaN.
    """
    from onnx import TensorProto, helper

    def const(name: str, values: list[int] | list[float], dtype: int) -> Any:
        tensor = helper.make_tensor(name + "_v", dtype, [len(values)], values)
        return helper.make_node("Constant", [], [name], value=tensor)

    return [
        const("domain_cols", list(NON_NEGATIVE), TensorProto.INT64),
        const("domain_zero", [0.0], TensorProto.FLOAT),
        helper.make_node("Gather", [INPUT_NAME, "domain_cols"], ["domain_values"], axis=1),
        helper.make_node("ReduceMin", ["domain_values"], ["domain_min"], axes=[1], keepdims=1),
        helper.make_node("Min", ["domain_min", "domain_zero"], ["domain_low"]),
        helper.make_node("Sqrt", ["domain_low"], ["domain_root"]),
        helper.make_node("Mul", ["domain_root", "domain_zero"], ["domain_guard"]),
        helper.make_node("Add", [probabilities_in, "domain_guard"], [probabilities_out]),
    ]
