"""Feature drift: PSI against the training distribution the model carries."""

from __future__ import annotations

import numpy as np

from tests.conftest import REPO
from volatility.features.spec import FEATURE_NAMES
from volatility.names import VARIANTS
from volatility.scoring.drift import (
    MIN_WINDOW_ROWS,
    DriftMonitor,
    Reference,
    psi,
    reference_from_features,
    references_of,
)
from volatility.scoring.model import Model


def test_the_same_distribution_is_stable_and_a_shift_is_not() -> None:
    rng = np.random.default_rng(4)
    train = rng.lognormal(0.0, 1.0, size=(20000, 3))
    reference = Reference.from_json(reference_from_features(train).to_json())  # survives JSON
    assert all(abs(s.sum() - 1.0) < 1e-12 for s in reference.shares)
    monitor = DriftMonitor({"BTC-USD": reference}, window=2000)
    for row in rng.lognormal(0.0, 1.0, size=(3000, 3)):
        monitor.add("BTC-USD", row)
    assert monitor.observed("BTC-USD") == 2000  # bounded window
    assert max(monitor.psi("BTC-USD")) < 0.05
    for row in rng.lognormal(1.0, 1.0, size=(2000, 3)):  # every value about e times larger
        monitor.add("BTC-USD", row)
    assert min(monitor.psi("BTC-USD")) > 0.25
    monitor.add("SOL-USD", [1.0, 2.0, 3.0])  # no reference: not tracked
    assert monitor.psi("SOL-USD") == [] and monitor.observed("SOL-USD") == 0


def test_psi_of_identical_shares_is_zero_and_empty_bins_stay_finite() -> None:
    shares = np.array([0.25, 0.25, 0.5])
    assert psi(shares, shares) == 0.0
    assert np.isfinite(psi(shares, np.array([0.0, 0.0, 1.0])))


def test_ties_merge_bins_instead_of_making_empty_ones() -> None:
    column = np.r_[np.zeros(900), np.arange(100.0)]  # mostly one value, as seconds_since_tick
    reference = reference_from_features(column[:, None])
    assert len(reference.edges[0]) < 9
    assert len(reference.shares[0]) == len(reference.edges[0]) + 1
    assert np.all(reference.shares[0] > 0)


def test_shipped_models_carry_a_reference_per_product_and_feature() -> None:
    for variant in VARIANTS:
        contract = Model.load(REPO / "models" / "artifacts", variant).contract
        references = references_of(contract.training_distribution)
        assert set(references) == {"BTC-USD", "ETH-USD"}
        for reference in references.values():
            assert len(reference.edges) == len(FEATURE_NAMES)


def test_training_records_how_far_its_own_sessions_stray() -> None:
    """Two regimes pooled: each session alone sits far from the pooled shares, and that
    distance is recorded per feature, window by window, so an ordinary regime is not drift."""
    rng = np.random.default_rng(5)
    calm = rng.lognormal(0.0, 0.3, size=(3000, 2))
    wild = rng.lognormal(2.0, 0.3, size=(3000, 2))
    wild[:, 1] = rng.lognormal(0.0, 0.3, size=3000)  # the second feature ignores the regime
    features = np.vstack([calm, wild])
    sessions = np.r_[np.zeros(3000, dtype=np.int64), np.ones(3000, dtype=np.int64)]
    reference = Reference.from_json(
        reference_from_features(features, sessions=sessions, window=1000).to_json()
    )
    regime, steady = reference.window_psi_max
    monitor = DriftMonitor({"BTC-USD": reference}, window=1000)
    calm_again = rng.lognormal(0.0, 0.3, size=(1000, 2))
    monitor.add_many("BTC-USD", calm_again[: MIN_WINDOW_ROWS - 1])
    assert monitor.psi("BTC-USD") == []  # too few vectors to compare with training's windows
    monitor.add_many("BTC-USD", calm_again[MIN_WINDOW_ROWS - 1 :])  # a calm hour again
    live_regime, live_steady = monitor.psi("BTC-USD")
    assert live_regime > 1.0 and live_regime <= regime * 1.1  # far, but no further than training
    assert steady < 0.25 and live_steady < 0.25
    # Without sessions, no figure; an older model's JSON has none either.
    assert reference_from_features(features).window_psi_max == ()
    legacy = {k: v for k, v in reference.to_json().items() if k != "window_psi_max"}
    assert Reference.from_json(legacy).window_psi_max == ()
