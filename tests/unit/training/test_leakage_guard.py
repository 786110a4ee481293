"""The guards refuse splits and labels that could see the future they are asked to predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.training.synthetic import T0, ticks_from_returns
from volatility_training.dataset import Dataset, build_dataset, dataset_from_sessions
from volatility_training.labels import forward_volatility
from volatility_training.leakage import LeakageError, check_forward_target, check_split
from volatility_training.split import walk_forward_folds


def test_split_guard_accepts_a_gap_of_the_horizon() -> None:
    check_split(np.arange(0.0, 100.0), np.arange(159.0, 300.0), horizon=60)


def test_split_guard_catches_training_rows_within_the_horizon() -> None:
    with pytest.raises(LeakageError, match="within the 60 s horizon"):
        check_split(np.arange(0.0, 100.0), np.arange(130.0, 300.0), horizon=60)


def test_split_guard_catches_test_rows_before_training_rows() -> None:
    with pytest.raises(LeakageError, match="precede"):
        check_split(np.arange(200.0, 300.0), np.arange(0.0, 100.0), horizon=60)
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(np.arange(1000.0))  # a random split interleaves in time
    with pytest.raises(LeakageError):
        check_split(shuffled[:800], shuffled[800:], horizon=60)


def test_walk_forward_folds_on_recordings_pass_the_guard(recordings: list[Path]) -> None:
    ds = build_dataset(recordings[2:4])
    folds = walk_forward_folds(ds.times, n_folds=3, gap=60)
    assert len(folds) == 3
    previous_train = 0
    for fold in folds:
        check_split(ds.times[fold.train], ds.times[fold.test], horizon=60)
        assert len(fold.train) > previous_train  # expanding window
        previous_train = len(fold.train)
    tested = np.concatenate([f.test for f in folds])
    assert len(np.unique(tested)) == len(tested)


def _dataset() -> tuple[Dataset, np.ndarray]:
    rng = np.random.default_rng(11)
    ticks = ticks_from_returns(rng.normal(0.0, 1.0, 1600) * np.linspace(0.2, 3.0, 1600))
    ds = dataset_from_sessions([ticks])
    assert ds.times[0] == T0 + 60
    return ds, forward_volatility(ds, 60)


def test_label_guard_accepts_the_forward_label() -> None:
    ds, forward = _dataset()
    check_forward_target(ds, forward, 60)


def test_label_guard_catches_a_label_from_current_volatility() -> None:
    ds, forward = _dataset()
    leaky = np.where(np.isnan(forward), np.nan, ds.column("rv_60s"))
    with pytest.raises(LeakageError, match="window ending at t"):
        check_forward_target(ds, leaky, 60)


def test_label_guard_catches_labels_without_a_complete_horizon() -> None:
    ds, forward = _dataset()
    padded = np.where(np.isnan(forward), 1.0, forward)
    with pytest.raises(LeakageError, match="complete 60 s horizon"):
        check_forward_target(ds, padded, 60)


def test_label_guard_catches_a_misaligned_window() -> None:
    ds, _ = _dataset()
    short = forward_volatility(ds, 30)  # the next 30 s, passed off as the next 60 s
    short[np.isnan(forward_volatility(ds, 60))] = np.nan
    with pytest.raises(LeakageError, match="do not carry"):
        check_forward_target(ds, short, 60)
