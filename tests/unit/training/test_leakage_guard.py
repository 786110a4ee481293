"""The guards refuse splits and labels that could see the future they are asked to predict.

Each leaky split and label below is built by code of its own, not by the splitter or the label
functions the guards protect, so the guards are shown to catch what those could get wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from tests.unit.training.synthetic import T0, ticks_from_returns
from volatility_training.dataset import Dataset, build_dataset, dataset_from_sessions
from volatility_training.labels import LabelSpec, label_dataset
from volatility_training.leakage import LeakageError, check_labels, check_split
from volatility_training.split import session_folds

SPEC = LabelSpec()  # 60 s horizon, 0.9 quantile, 600 s regime


def test_split_guard_accepts_sessions_apart() -> None:
    check_split(np.arange(0.0, 100.0), np.zeros(100), np.arange(160.0, 300.0), np.ones(140), 60)
    # A training session after the test one is fine too, if far enough.
    check_split(np.arange(400.0, 500.0), np.zeros(100), np.arange(0.0, 300.0), np.ones(300), 60)


def test_split_guard_catches_a_random_row_split() -> None:
    rng = np.random.default_rng(0)
    rows = rng.permutation(1000)  # a shuffled split interleaves in time, inside one session
    times, sessions = np.arange(1000.0), np.zeros(1000)
    train, test = rows[:800], rows[800:]
    with pytest.raises(LeakageError, match="share sessions"):
        check_split(times[train], sessions[train], times[test], sessions[test], 60)


def test_split_guard_catches_rows_within_the_horizon_on_either_side() -> None:
    test_t = np.arange(1000.0, 2000.0)
    before = np.arange(0.0, 950.0)  # ends 50 s before the test session
    with pytest.raises(LeakageError, match="within the 60 s horizon"):
        check_split(before, np.zeros(len(before)), test_t, np.ones(1000), 60)
    after = np.arange(2030.0, 3000.0)  # starts 30 s after it
    with pytest.raises(LeakageError, match=r"within the 60 s horizon .*closest 31 s"):
        check_split(after, np.zeros(len(after)), test_t, np.ones(1000), 60)


def test_split_guard_catches_adjacent_sessions_left_unpurged(recordings: list[Path]) -> None:
    # Two recordings about two minutes apart: a 300 s horizon makes them overlap.
    pair = [p for p in recordings if p.name.startswith(("20251206T011247Z", "20251206T013105Z"))]
    ds = build_dataset(pair)
    first, second = np.flatnonzero(ds.sessions == 0), np.flatnonzero(ds.sessions == 1)
    check_split(ds.times[first], ds.sessions[first], ds.times[second], ds.sessions[second], 60)
    with pytest.raises(LeakageError, match="300 s horizon"):
        check_split(ds.times[first], ds.sessions[first], ds.times[second], ds.sessions[second], 300)
    # The splitter purges those rows, and its folds pass the guard.
    for fold in session_folds(ds.sessions, ds.times, gap=300):
        check_split(
            ds.times[fold.train],
            ds.sessions[fold.train],
            ds.times[fold.test],
            ds.sessions[fold.test],
            300,
        )
        assert len(fold.train) < np.sum(ds.sessions != fold.session)


def _dataset() -> Dataset:
    rng = np.random.default_rng(11)
    scale = np.r_[np.full(1600, 0.3), np.full(1600, 2.0), np.full(1600, 0.5)]
    ticks = ticks_from_returns(rng.normal(0.0, 1.0, 4800) * scale)  # 1200 s, 4 ticks/s
    ds = dataset_from_sessions([ticks])
    assert ds.times[0] == T0 + 60
    return ds


def _rolling_quantile(rv: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Per row i, the 0.9 quantile of rv[i + start : i + stop] (NaN where out of range)."""
    out = np.full(len(rv), np.nan)
    width = stop - start
    values = np.quantile(sliding_window_view(rv, width), 0.9, axis=1)
    for i in range(len(rv)):
        if i + start >= 0 and i + stop <= len(rv):
            out[i] = values[i + start]
    return out


def _labels_with(ds: Dataset, level: np.ndarray, forward_offset: int = 60) -> np.ndarray:
    """Labels from an independently computed level and the rv read ``forward_offset`` rows on."""
    rv = ds.column("rv_60s")
    forward = np.full(len(ds), np.nan)
    forward[: len(ds) - forward_offset] = rv[forward_offset:]
    labels = np.where(forward > level, 1.0, 0.0)
    labels[np.isnan(forward) | np.isnan(level)] = np.nan
    return labels


def test_label_guard_accepts_the_label_and_an_independent_recomputation() -> None:
    ds = _dataset()
    labels = label_dataset(ds, SPEC)
    check_labels(ds, labels, SPEC)
    mine = _labels_with(ds, _rolling_quantile(ds.column("rv_60s"), -599, 1))
    assert np.array_equal(mine, labels, equal_nan=True)
    assert 0 < np.nansum(labels) < np.sum(~np.isnan(labels))


def test_label_guard_catches_a_regime_level_that_looks_ahead() -> None:
    ds = _dataset()
    centred = _labels_with(ds, _rolling_quantile(ds.column("rv_60s"), -300, 300))
    with pytest.raises(LeakageError, match="without 600 s of past"):
        check_labels(ds, centred, SPEC)
    centred[:599] = np.nan  # rows with a full past still use the 300 s after t
    with pytest.raises(LeakageError, match="quantile of the past 600 s"):
        check_labels(ds, centred, SPEC)
    whole = _labels_with(ds, np.full(len(ds), np.quantile(ds.column("rv_60s"), 0.9)))
    whole[:599] = np.nan  # even with the warm-up respected, a session-wide level sees ahead
    with pytest.raises(LeakageError, match="quantile of the past"):
        check_labels(ds, whole, SPEC)


def test_label_guard_catches_a_label_from_current_volatility() -> None:
    ds = _dataset()
    now = _labels_with(ds, _rolling_quantile(ds.column("rv_60s"), -599, 1), forward_offset=0)
    now[np.isnan(label_dataset(ds, SPEC))] = np.nan
    with pytest.raises(LeakageError, match="window ending at t"):
        check_labels(ds, now, SPEC)


def test_label_guard_catches_incomplete_horizons_and_regimes() -> None:
    ds = _dataset()
    labels = label_dataset(ds, SPEC)
    padded = labels.copy()
    padded[-30:] = 0.0
    with pytest.raises(LeakageError, match="complete 60 s horizon"):
        check_labels(ds, padded, SPEC)
    early = labels.copy()
    early[:100] = 0.0
    with pytest.raises(LeakageError, match="600 s of past"):
        check_labels(ds, early, SPEC)


def test_label_guard_catches_a_misaligned_window() -> None:
    ds = _dataset()
    short = _labels_with(ds, _rolling_quantile(ds.column("rv_60s"), -599, 1), forward_offset=30)
    short[np.isnan(label_dataset(ds, SPEC))] = np.nan
    with pytest.raises(LeakageError, match="not \\[t, t \\+ 60\\) volatility"):
        check_labels(ds, short, SPEC)
