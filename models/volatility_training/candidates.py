"""The ML estimators compared inside the cross-validation, all converted faithfully by skl2onnx.

Each candidate sees the feature vector through a fixed elementwise transform that is exported as
ONNX nodes ahead of the converted estimator:

- ``log``: ln(x + eps) on every non-negative feature (volatilities, ranges, rates and spreads are
  heavy-tailed; logs make them comparable across products and regimes). A negative value there
  is outside the domain every shipped model refuses alike (see `domain`).
- ``log_ratios``: the logs plus each short window relative to the product's 300 s level
  (ln a - ln b): the regime-normalised view that lets one model serve both products.
- ``raw_ratios``: for trees, the raw features plus the same ratios as float32 divisions (trees do
  not care for monotone transforms, and a division is bit-identical in numpy and ONNX).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from volatility.features.spec import FEATURE_NAMES
from volatility_training.domain import NON_NEGATIVE, outside_domain

LOG_EPS = 1e-3
#: Columns that are logged: the never-negative ones.
LOG_COLUMNS: tuple[int, ...] = NON_NEGATIVE
_RATIO_PAIRS: tuple[tuple[str, str], ...] = (
    ("rv_10s", "rv_300s"),
    ("rv_30s", "rv_300s"),
    ("rv_60s", "rv_300s"),
    ("range_10s", "rv_300s"),
    ("range_30s", "rv_300s"),
    ("range_60s", "rv_300s"),
    ("tick_rate_10s", "tick_rate_300s"),
    ("tick_rate_30s", "tick_rate_300s"),
    ("tick_rate_60s", "tick_rate_300s"),
    ("spread_mean_10s", "spread_mean_60s"),
)
#: (numerator, denominator) column indices of the regime ratios.
RATIO_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (FEATURE_NAMES.index(a), FEATURE_NAMES.index(b)) for a, b in _RATIO_PAIRS
)

Inputs = Literal["log", "log_ratios", "raw_ratios"]


def log_features(features: np.ndarray) -> np.ndarray:
    """ln(x + eps) on LOG_COLUMNS, other columns unchanged (float64; NaN where x < -eps)."""
    out = np.asarray(features, dtype=np.float64).copy()
    cols = list(LOG_COLUMNS)
    with np.errstate(invalid="ignore"):
        out[:, cols] = np.log(out[:, cols] + LOG_EPS)
    return out


def transform(inputs: Inputs, features: np.ndarray) -> np.ndarray:
    """The candidate's view of float32-exact feature rows."""
    num = [a for a, _ in RATIO_PAIRS]
    den = [b for _, b in RATIO_PAIRS]
    if inputs == "log":
        return log_features(features)
    if inputs == "log_ratios":
        logged = log_features(features)
        return np.hstack([logged, logged[:, num] - logged[:, den]])
    x32 = np.asarray(features, dtype=np.float32)
    ratios = x32[:, num] / (x32[:, den] + np.float32(LOG_EPS))
    return np.hstack([x32, ratios]).astype(np.float64)


@dataclass(frozen=True)
class Candidate:
    name: str
    description: str
    inputs: Inputs
    build: Callable[[int], Any]  # seed -> an unfitted scikit-learn classifier


@dataclass
class FittedModel:
    """A fitted candidate: its input transform followed by the estimator."""

    candidate: Candidate
    estimator: Any

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        # Rows outside the domain are NaN, as in the graph; scikit-learn refuses NaN inputs.
        scores = np.full(len(features), np.nan)
        inside = ~outside_domain(features)
        if inside.any():
            x = transform(self.candidate.inputs, np.asarray(features)[inside])
            scores[inside] = self.estimator.predict_proba(x)[:, 1]
        return scores


def _logistic(c: float) -> Callable[[int], Any]:
    def build(seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        return Pipeline(
            [
                ("scale", StandardScaler()),
                ("classify", LogisticRegression(C=c, max_iter=5000, random_state=seed)),
            ]
        )

    return build


def _boosting(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=60,
        max_leaf_nodes=8,
        learning_rate=0.05,
        min_samples_leaf=200,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )


CANDIDATES: tuple[Candidate, ...] = (
    Candidate(
        "logistic_log_c0.01",
        "StandardScaler + LogisticRegression(C=0.01) on log features",
        "log",
        _logistic(0.01),
    ),
    Candidate(
        "logistic_ratios_c1",
        "StandardScaler + LogisticRegression(C=1) on log features and regime ratios",
        "log_ratios",
        _logistic(1.0),
    ),
    Candidate(
        "hist_gradient_boosting",
        "HistGradientBoostingClassifier(60 iterations, 8 leaves) on features and regime ratios",
        "raw_ratios",
        _boosting,
    ),
)


def candidate(name: str) -> Candidate:
    for c in CANDIDATES:
        if c.name == name:
            return c
    raise KeyError(f"unknown candidate {name!r}; known: {', '.join(c.name for c in CANDIDATES)}")


def _float32_thresholds(estimator: Any) -> None:
    """Move each split threshold of a fitted HistGradientBoosting model down to the largest
    float32 at or below it.

    Served inputs are float32, and ONNX stores thresholds as float32: for a float32 x,
    ``x <= t`` holds exactly when ``x <= float32_floor(t)``, so scikit-learn and onnxruntime then
    take the same branch on every input (a plain cast could round a threshold up past an input).
    """
    for predictors in getattr(estimator, "_predictors", []):
        for predictor in predictors:
            nodes = predictor.nodes
            split = nodes["is_leaf"] == 0
            t64 = nodes["num_threshold"][split]
            t32 = t64.astype(np.float32)
            above = t32.astype(np.float64) > t64
            t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
            nodes["num_threshold"][split] = t32.astype(np.float64)


def fit(cand: Candidate, features: np.ndarray, labels: np.ndarray, seed: int) -> FittedModel:
    estimator = cand.build(seed)
    estimator.fit(transform(cand.inputs, features), labels.astype(np.int64))
    _float32_thresholds(estimator)
    return FittedModel(cand, estimator)
