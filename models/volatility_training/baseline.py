"""The baseline: a transparent rule on current realized volatility, as an ONNX graph.

score = sigmoid((ln(rv_60s + eps) - mu) / sigma), the z-score of the log of current 60 s realized
volatility against the training distribution, squashed to (0, 1). It flags a spike when current
volatility is already in the top tail of what training saw: persistence, the rule any ML model has
to beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from volatility.features.spec import FEATURE_NAMES
from volatility.scoring.contract import INPUT_NAME, PROBABILITIES

BASELINE_FEATURE = "rv_60s"
EPS = 1e-3  # bps; keeps log finite on windows without a price move


def fit_baseline(rv: np.ndarray) -> tuple[float, float]:
    """mu and sigma of ln(rv + eps) over the training rows."""
    z = np.log(rv + EPS)
    return float(z.mean()), float(max(z.std(), 1e-6))


def baseline_scores(features: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    """The rule in numpy, for parity checks against the ONNX graph."""
    rv = features[:, FEATURE_NAMES.index(BASELINE_FEATURE)].astype(np.float64)
    z = (np.log(rv + EPS) - mu) / sigma
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


@dataclass(frozen=True)
class BaselineRule:
    """The fitted rule: location and scale of ln(rv_60s + eps) over the training rows."""

    mu: float
    sigma: float

    @classmethod
    def fit(cls, features: np.ndarray) -> BaselineRule:
        mu, sigma = fit_baseline(features[:, FEATURE_NAMES.index(BASELINE_FEATURE)])
        return cls(mu, sigma)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return baseline_scores(features, self.mu, self.sigma)

    def to_onnx(self, metadata: dict[str, str]) -> Any:
        return build_baseline_onnx(self.mu, self.sigma, metadata)


def build_baseline_onnx(mu: float, sigma: float, metadata: dict[str, str]) -> Any:
    """An ONNX model: features [n, F] -> probabilities [n, 2] (second column: spike)."""
    from onnx import TensorProto, helper

    col = FEATURE_NAMES.index(BASELINE_FEATURE)

    def const(name: str, value: list[float] | list[int], dtype: int = TensorProto.FLOAT) -> Any:
        return helper.make_node(
            "Constant",
            [],
            [name],
            value=helper.make_tensor(name + "_v", dtype, [len(value)], value),
        )

    nodes = [
        const("col", [col], TensorProto.INT64),
        const("eps", [EPS]),
        const("mu", [mu]),
        const("sigma", [sigma]),
        const("one", [1.0]),
        helper.make_node("Gather", [INPUT_NAME, "col"], ["rv"], axis=1),
        helper.make_node("Add", ["rv", "eps"], ["rv_eps"]),
        helper.make_node("Log", ["rv_eps"], ["log_rv"]),
        helper.make_node("Sub", ["log_rv", "mu"], ["centred"]),
        helper.make_node("Div", ["centred", "sigma"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p_spike"]),
        helper.make_node("Sub", ["one", "p_spike"], ["p_calm"]),
        helper.make_node("Concat", ["p_calm", "p_spike"], [PROBABILITIES], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "volatility_baseline",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, len(FEATURE_NAMES)])],
        [helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, [None, 2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="volatility"
    )
    model.ir_version = 8
    helper.set_model_props(model, metadata)
    return model
