"""Scores of spike probabilities against labels, in numpy: offline evaluation and live quality.

PR-AUC is the average precision (precision at each distinct score threshold weighted by the
recall it adds, the step-wise area, without interpolation); ROC-AUC is the Mann-Whitney
statistic with ties counted one half. Both are NaN when the labels hold a single class.
"""

from __future__ import annotations

import math

import numpy as np

ECE_BINS = 10
MetricValues = dict[str, float]


def _distinct_steps(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, highest score first."""
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]
    tps = np.cumsum(y_sorted)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    return tps, fps


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    positives = float(y.sum())
    if positives == 0 or positives == len(y):
        return float("nan")
    tps, fps = _distinct_steps(y, p)
    precision = tps / (tps + fps)
    recall_gain = np.diff(np.r_[0.0, tps]) / positives
    return float(np.sum(precision * recall_gain))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    ranks = np.empty(len(p), dtype=np.float64)
    sorted_p = p[order]
    # Average ranks over ties.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_p)) + 1]
    ends = np.r_[starts[1:], len(p)]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        ranks[order[start:end]] = 0.5 * (start + end - 1) + 1.0
    rank_sum = float(ranks[y == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Row-weighted mean |observed spike rate - mean probability| over equal-width bins."""
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(float(y[mask].mean()) - float(p[mask].mean()))
    return total / len(y)


def reliability(
    y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS
) -> list[tuple[float, float, int]]:
    """(mean probability, observed rate, rows) per non-empty bin, for calibration plots."""
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    out: list[tuple[float, float, int]] = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append((float(p[mask].mean()), float(y[mask].mean()), int(mask.sum())))
    return out


def pr_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at each distinct threshold, highest threshold first."""
    positives = max(float(y.sum()), 1.0)
    tps, fps = _distinct_steps(y, p)
    return tps / positives, tps / (tps + fps)


def score(y: np.ndarray, p: np.ndarray, threshold: float | np.ndarray) -> MetricValues:
    """Every reported metric; ``threshold`` is the operating threshold (or one per row)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return dict.fromkeys(("pr_auc", "roc_auc", "precision", "recall", "brier", "ece"), math.nan)
    flagged = p >= threshold
    true_pos = float(np.sum(flagged & (y == 1)))
    return {
        "pr_auc": average_precision(y, p),
        "roc_auc": roc_auc(y, p),
        "precision": true_pos / float(flagged.sum()) if flagged.any() else float("nan"),
        "recall": true_pos / float(y.sum()) if y.any() else float("nan"),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": expected_calibration_error(y, p),
    }


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score threshold (flag when p >= threshold) with the highest F1 on these rows."""
    if not y.any():
        return float(np.max(p)) if len(p) else 0.5
    order = np.argsort(-p, kind="stable")
    p_sorted = p[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]
    tps, fps = _distinct_steps(y, p)
    f1 = 2 * tps / (tps + fps + float(y.sum()))
    return float(p_sorted[last_of_tie[int(np.argmax(f1))]])
