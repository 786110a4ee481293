"""Walk-forward folds: train on the past, test on the future, with a gap of at least the horizon.

Rows are ordered by event time (sessions are recordings made on different dates, so time order
is also session order). The time line is cut into ``n_folds + 1`` blocks of equal row counts;
fold k tests on block k + 1 and trains on every earlier row that ends at least ``gap`` seconds
before the first test row, so no training label window reaches into the test period. Never
random, never stratified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    number: int
    train: np.ndarray  # row indices, time-ordered
    test: np.ndarray  # row indices, time-ordered


def walk_forward_folds(times: np.ndarray, n_folds: int, gap: float) -> list[Fold]:
    """Expanding-window folds over the rows' event times; empty folds are left out."""
    if n_folds < 1:
        raise ValueError("n_folds must be at least 1")
    order = np.argsort(times, kind="stable")
    sorted_times = times[order]
    # Cut at row-count quantiles, moved to a time value so that rows of one second stay together.
    cuts = [sorted_times[(len(order) * k) // (n_folds + 1)] for k in range(1, n_folds + 1)]
    cuts.append(np.inf)
    folds: list[Fold] = []
    for k in range(n_folds):
        test = order[(sorted_times >= cuts[k]) & (sorted_times < cuts[k + 1])]
        if not len(test):
            continue
        first_test = times[test].min()
        train = order[sorted_times <= first_test - gap]
        if len(train):
            folds.append(Fold(number=len(folds), train=train, test=test))
    return folds


def holdout_tail(times: np.ndarray, fraction: float, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """(earlier rows, later rows): the last ``fraction`` of rows by time, after a gap."""
    order = np.argsort(times, kind="stable")
    sorted_times = times[order]
    cut = sorted_times[int(len(order) * (1.0 - fraction))]
    return order[sorted_times <= cut - gap], order[sorted_times >= cut]
