"""The numpy metrics agree with scikit-learn's definitions and behave at the edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from volatility.scoring.quality import (
    average_precision,
    best_f1_threshold,
    expected_calibration_error,
    roc_auc,
    score,
)


@pytest.mark.parametrize("seed", range(4))
def test_ranking_metrics_match_scikit_learn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(500) < 0.15).astype(np.float64)
    p = np.round(rng.random(500) * 0.5 + 0.4 * y, 1)  # coarse scores: many ties
    assert average_precision(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_single_class_gives_undefined_ranking_metrics() -> None:
    y, p = np.zeros(10), np.linspace(0, 1, 10)
    assert math.isnan(average_precision(y, p))
    assert math.isnan(roc_auc(y, p))


def test_calibration_error_and_brier() -> None:
    y = np.array([0, 0, 0, 1] * 25, dtype=np.float64)
    assert expected_calibration_error(y, np.full(100, 0.25)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(100, 0.75)) == pytest.approx(0.5)
    figures = score(y, np.full(100, 0.25), threshold=0.5)
    assert figures["brier"] == pytest.approx(0.75 * 0.0625 + 0.25 * 0.5625)
    assert math.isnan(figures["precision"]) and figures["recall"] == 0.0


def test_precision_recall_at_threshold_and_best_f1() -> None:
    y = np.array([0, 0, 1, 1, 0, 1], dtype=np.float64)
    p = np.array([0.1, 0.2, 0.8, 0.9, 0.7, 0.3])
    figures = score(y, p, threshold=0.7)
    assert figures["precision"] == pytest.approx(2 / 3)
    assert figures["recall"] == pytest.approx(2 / 3)
    assert best_f1_threshold(y, p) == pytest.approx(0.3)  # flags 0.3..0.9: F1 = 6/7
