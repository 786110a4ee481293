"""Labels read the volatility of the next horizon, exactly, from the same history."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.training.synthetic import T0, calm_then_burst, forward_rv_bps, ticks_from_returns
from volatility_training.dataset import dataset_from_sessions
from volatility_training.labels import (
    LabelSpec,
    apply_labels,
    fit_label_thresholds,
    forward_volatility,
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


def test_rows_just_before_a_burst_are_spikes_while_current_volatility_is_calm() -> None:
    ticks, burst = calm_then_burst(seed=1)
    ds = dataset_from_sessions([ticks])
    forward = forward_volatility(ds, 60)
    # Thresholds come from training rows only: here, rows whose whole horizon is calm.
    training = ds.times <= burst - 60
    limits = fit_label_thresholds(ds.products[training], forward[training], 0.9)
    assert limits["BTC-USD"] < 1.5
    labels = apply_labels(ds.products, forward, limits)
    ahead = (ds.times > burst - 55) & (ds.times <= burst)
    assert labels[ahead].min() == 1.0
    assert ds.column("rv_60s")[ahead].max() < 1.5  # calm now, spike ahead
    assert 0.05 < labels[training].mean() <= 0.1
    assert np.isnan(labels[ds.times > ds.times.max() - 60]).all()


def test_thresholds_apply_unchanged_and_unknown_products_stay_unlabelled() -> None:
    products = np.array(["BTC-USD", "BTC-USD", "ETH-USD", "SOL-USD", "BTC-USD"])
    forward = np.array([1.0, 3.0, 3.0, 9.0, np.nan])
    labels = apply_labels(products, forward, {"BTC-USD": 2.0, "ETH-USD": 3.0})
    assert labels[:3].tolist() == [0.0, 1.0, 0.0]  # strictly above the threshold
    assert np.isnan(labels[3:]).all()


def test_label_spec_rejects_horizons_the_engine_has_no_window_for() -> None:
    with pytest.raises(ValueError, match="horizon"):
        LabelSpec(horizon=45)
    with pytest.raises(ValueError, match="quantile"):
        LabelSpec(quantile=1.0)
