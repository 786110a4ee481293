"""Labels read the volatility of the next horizon, exactly, from the same history."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.training.synthetic import T0, calm_then_burst, forward_rv_bps, ticks_from_returns
from volatility_training.dataset import dataset_from_sessions
from volatility_training.labels import (
    LabelSpec,
    forward_volatility,
    label_dataset,
    regime_level,
    spike_labels,
)


def test_forward_volatility_is_the_next_window_of_the_ticks() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0, 1.0, 1600) * np.r_[np.ones(800), 5 * np.ones(800)]
    ticks = ticks_from_returns(returns, step=0.25)  # 400 s of ticks
    ds = dataset_from_sessions([ticks])
    forward = forward_volatility(ds, 60)
    labelled = ~np.isnan(forward)
    # Rows run from T0 + 60 (warm-up); the last complete horizon starts 60 s before the last row.
    assert ds.times[0] == T0 + 60
    assert np.array_equal(labelled, ds.times + 60 <= ds.times.max())
    for i in np.flatnonzero(labelled)[::7]:
        want = forward_rv_bps(ticks, ds.times[i], 60)
        assert forward[i] == pytest.approx(want, rel=1e-6)
        # The window ending at t is a different quantity: the label is not the current rv.
        current = forward_rv_bps(ticks, ds.times[i] - 60, 60)
        assert ds.column("rv_60s")[i] == pytest.approx(current, rel=1e-6)


@pytest.mark.parametrize("horizon", [10, 30, 300])
def test_other_horizons_read_their_own_window(horizon: int) -> None:
    rng = np.random.default_rng(horizon)
    ticks = ticks_from_returns(rng.normal(0.0, 2.0, 3200), step=0.25)
    ds = dataset_from_sessions([ticks])
    forward = forward_volatility(ds, horizon)
    rows = np.flatnonzero(~np.isnan(forward))
    assert len(rows) == len(ds) - horizon
    for i in rows[::13]:
        assert forward[i] == pytest.approx(forward_rv_bps(ticks, ds.times[i], horizon), rel=1e-6)


def test_silence_restarts_history_and_unlabels_rows_before_it() -> None:
    rng = np.random.default_rng(5)
    first = ticks_from_returns(rng.normal(0.0, 1.0, 800), step=0.25)  # 200 s
    second = ticks_from_returns(rng.normal(0.0, 1.0, 800), start=T0 + 400, step=0.25)
    ds = dataset_from_sessions([first + second])
    assert len(set(ds.histories.tolist())) == 2
    forward = forward_volatility(ds, 60)
    for history in set(ds.histories.tolist()):
        rows = ds.histories == history
        last = ds.times[rows].max()
        assert np.array_equal(~np.isnan(forward[rows]), ds.times[rows] + 60 <= last)
    # Sessions never borrow each other's future either.
    two = dataset_from_sessions([first, ticks_from_returns(rng.normal(0.0, 1.0, 800), start=T0)])
    assert np.isnan(forward_volatility(two, 60)[two.times > T0 + 200 - 60]).all()


def test_regime_level_is_the_quantile_of_the_past_only() -> None:
    rng = np.random.default_rng(9)
    returns = rng.normal(0.0, 1.0, 4000) * np.r_[np.ones(2400), 4 * np.ones(1600)]
    ds = dataset_from_sessions([ticks_from_returns(returns, step=0.25)])  # 1000 s
    spec = LabelSpec(regime_seconds=600)
    level = regime_level(ds, spec)
    rv = ds.column("rv_60s")
    # Rows start after the 60 s warm-up; the level needs 600 rows of its own history.
    assert np.isnan(level[:599]).all() and not np.isnan(level[599:]).any()
    for i in range(599, len(ds), 37):
        past = rv[(ds.times > ds.times[i] - 600) & (ds.times <= ds.times[i])]
        assert len(past) == 600
        assert level[i] == pytest.approx(np.quantile(past, 0.9))
    # Changing what comes after a row never changes its level.
    cut = 700
    shorter = dataset_from_sessions([ticks_from_returns(returns[: (cut + 60) * 4], step=0.25)])
    assert np.array_equal(regime_level(shorter, spec)[:cut], level[:cut], equal_nan=True)


def test_rows_just_before_a_burst_are_spikes_while_current_volatility_is_calm() -> None:
    ticks, burst = calm_then_burst(seed=1, calm_s=780)
    ds = dataset_from_sessions([ticks])
    spec = LabelSpec()
    labels = label_dataset(ds, spec)
    ahead = (ds.times > burst - 55) & (ds.times <= burst)
    assert labels[ahead].min() == 1.0
    assert ds.column("rv_60s")[ahead].max() < 1.5  # calm now, spike ahead
    # Calm rows whose horizon stays calm: a spike only as often as the regime quantile allows.
    calm = (ds.times <= burst - 60) & ~np.isnan(labels)
    assert calm.sum() > 50 and labels[calm].mean() <= 0.2
    assert np.isnan(labels[ds.times > ds.times.max() - 60]).all()
    assert np.isnan(labels[ds.times < ds.times[0] + 599]).all()  # no regime yet


def test_spike_labels_are_strictly_above_the_level_and_need_both_sides() -> None:
    forward = np.array([1.0, 3.0, 2.0, np.nan, 5.0])
    level = np.array([2.0, 2.0, 2.0, 1.0, np.nan])
    labels = spike_labels(forward, level)
    assert labels[:3].tolist() == [0.0, 1.0, 0.0]
    assert np.isnan(labels[3:]).all()


def test_label_spec_rejects_what_the_engine_or_the_data_cannot_support() -> None:
    with pytest.raises(ValueError, match="horizon"):
        LabelSpec(horizon=45)
    with pytest.raises(ValueError, match="quantile"):
        LabelSpec(quantile=1.0)
    with pytest.raises(ValueError, match="regime_seconds"):
        LabelSpec(regime_seconds=300)
    with pytest.raises(ValueError, match="regime_seconds"):
        LabelSpec(horizon=300, regime_seconds=590)
