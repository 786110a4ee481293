"""The ML estimators compared by walk-forward evaluation, all converted faithfully by skl2onnx.

Linear models see log-scaled features (volatilities, ranges, rates and spreads are positive and
heavy-tailed, and a log makes them comparable across products and regimes without per-product
normalisation); the transform is a fixed elementwise function, exported as ONNX nodes ahead of
the converted estimator. Trees see raw features (monotone transforms do not change them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from volatility.features.spec import FEATURE_NAMES

LOG_EPS = 1e-3
#: Columns that are logged: every feature except the signed mean returns.
LOG_COLUMNS: tuple[int, ...] = tuple(
    i for i, name in enumerate(FEATURE_NAMES) if not name.startswith("ret_mean_")
)


def log_features(features: np.ndarray) -> np.ndarray:
    """ln(|x| + eps) on LOG_COLUMNS, other columns unchanged (float64)."""
    out = np.asarray(features, dtype=np.float64).copy()
    cols = list(LOG_COLUMNS)
    out[:, cols] = np.log(np.abs(out[:, cols]) + LOG_EPS)
    return out


@dataclass(frozen=True)
class Candidate:
    name: str
    description: str
    log_inputs: bool
    build: Callable[[int], Any]  # seed -> an unfitted scikit-learn classifier


@dataclass
class FittedModel:
    """A fitted candidate: the optional log transform followed by the estimator."""

    candidate: Candidate
    estimator: Any

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        x = log_features(features) if self.candidate.log_inputs else features
        return np.asarray(self.estimator.predict_proba(x)[:, 1], dtype=np.float64)


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
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(
        n_estimators=60,
        max_depth=2,
        learning_rate=0.05,
        subsample=0.7,
        min_samples_leaf=100,
        random_state=seed,
    )


CANDIDATES: tuple[Candidate, ...] = (
    Candidate(
        "logistic_log_c0.01",
        "StandardScaler + LogisticRegression(C=0.01) on log-scaled features",
        True,
        _logistic(0.01),
    ),
    Candidate(
        "logistic_log_c0.001",
        "StandardScaler + LogisticRegression(C=0.001) on log-scaled features",
        True,
        _logistic(0.001),
    ),
    Candidate(
        "gradient_boosting",
        "GradientBoostingClassifier(60 trees, depth 2, subsample 0.7) on raw features",
        False,
        _boosting,
    ),
)


def candidate(name: str) -> Candidate:
    for c in CANDIDATES:
        if c.name == name:
            return c
    raise KeyError(f"unknown candidate {name!r}; known: {', '.join(c.name for c in CANDIDATES)}")


def fit(cand: Candidate, features: np.ndarray, labels: np.ndarray, seed: int) -> FittedModel:
    estimator = cand.build(seed)
    x = log_features(features) if cand.log_inputs else features
    estimator.fit(x, labels.astype(np.int64))
    return FittedModel(cand, estimator)
