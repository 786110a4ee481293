"""The baseline: a transparent persistence rule, as an ONNX graph.

score = sigmoid((ln(vol_ratio_60_300 + eps) - mu) / sigma): the z-score of the log of the last
minute's realized volatility relative to the product's 300 s level, against the training
distribution, squashed to (0, 1). The target is a spike relative to the product's own regime, so
the natural rule is persistence in the same terms: the last minute already runs hot for this
product. It is the rule any ML model has to beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from volatility.features.spec import FEATURE_NAMES
from volatility.scoring.contract import INPUT_NAME, PROBABILITIES
from volatility_training.domain import domain_guard_nodes, guard_scores

BASELINE_FEATURE = "vol_ratio_60_300"
EPS = 1e-3  # keeps the log finite on windows without a price move


def fit_baseline(rv: np.ndarray) -> tuple[float, float]:
    """mu and sigma of ln(x + eps) over the training rows."""
    z = np.log(rv + EPS)
    return float(z.mean()), float(max(z.std(), 1e-6))


def baseline_scores(features: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    """The rule in numpy, for parity checks against the ONNX graph."""
    return rule_of(features[:, FEATURE_NAMES.index(BASELINE_FEATURE)].astype(np.float64), mu, sigma)


def rule_of(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    """sigmoid((ln(x + eps) - mu) / sigma) of the baseline feature's values."""
    with np.errstate(invalid="ignore"):
        z = (np.log(x + EPS) - mu) / sigma
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


@dataclass(frozen=True)
class BaselineRule:
    """The fitted rule: location and scale of ln(vol_ratio_60_300 + eps) over training rows."""

    mu: float
    sigma: float

    @classmethod
    def fit(cls, features: np.ndarray) -> BaselineRule:
        mu, sigma = fit_baseline(features[:, FEATURE_NAMES.index(BASELINE_FEATURE)])
        return cls(mu, sigma)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return guard_scores(features, baseline_scores(features, self.mu, self.sigma))

    def score_of(self, value: float) -> float:
        """The score of a row whose baseline feature is ``value``."""
        return float(rule_of(np.array([value]), self.mu, self.sigma)[0])

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
        helper.make_node("Concat", ["p_calm", "p_spike"], ["unguarded"], axis=1),
        *domain_guard_nodes("unguarded", PROBABILITIES),
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
