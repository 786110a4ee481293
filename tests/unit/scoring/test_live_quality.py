"""Live quality: predictions labelled in the stream agree with offline evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from volatility.features.spec import FEATURE_NAMES
from volatility.names import VARIANTS
from volatility.scoring.live import LiveLabeller, LiveQuality
from volatility.scoring.model import Model
from volatility.scoring.target import LabelSpec
from volatility_training.dataset import build_dataset
from volatility_training.evaluate import evaluate_models
from volatility_training.labels import label_dataset

ARTIFACTS = REPO / "models" / "artifacts"
RV = FEATURE_NAMES.index("rv_60s")


def _stream(ds_features: np.ndarray, times: np.ndarray, products: np.ndarray) -> list[int]:
    """Rows in the order a stream delivers them: by event time, products interleaved."""
    return sorted(range(len(times)), key=lambda i: (times[i], str(products[i])))


def test_live_labels_are_the_offline_labels_and_figures_agree(recordings: list[Path]) -> None:
    """On a replayed recording (both products), every labelled prediction and the live figures
    are those of `volatility evaluate` on the same recording."""
    data = [p for p in recordings if p.name.startswith("20260404T031918Z")]
    ds = build_dataset(data)
    spec = LabelSpec()
    offline = label_dataset(ds, spec)
    models = {v: Model.load(ARTIFACTS, v) for v in VARIANTS}
    scores = {v: m.score(ds.features.astype(np.float32)) for v, m in models.items()}
    labeller = LiveLabeller(spec)
    quality = LiveQuality({v: m.contract.threshold for v, m in models.items()}, window=10**6)
    index = {
        (str(p), float(t)): i for i, (p, t) in enumerate(zip(ds.products, ds.times, strict=True))
    }
    seen = 0
    for i in _stream(ds.features, ds.times, ds.products):
        given: dict[str, float] = {v: float(scores[v][i]) for v in VARIANTS}
        out = labeller.observe(str(ds.products[i]), float(ds.times[i]), ds.features[i, RV], given)
        if out is None:
            continue
        row = index[(out.product, out.time)]
        assert out.label == offline[row]
        assert out.scores == {v: float(scores[v][row]) for v in VARIANTS}
        quality.add(out)
        seen += 1
    assert seen == int(np.sum(~np.isnan(offline))) > 1000
    assert labeller.pending() <= 2 * spec.horizon  # only the last minute of each product waits
    report = evaluate_models(data, ARTIFACTS)
    for product, block in report["per_product"].items():
        for variant in VARIANTS:
            live = quality.figures(variant, product)
            want = block["models"][variant]
            assert live.labelled == block["rows"]
            assert live.prevalence == pytest.approx(block["prevalence"])
            assert abs(live.pr_auc - want["pr_auc"]) <= 0.02
            assert live.precision == pytest.approx(want["precision"], nan_ok=True)
            assert live.recall == pytest.approx(want["recall"], nan_ok=True)
            assert live.brier == pytest.approx(want["brier"])
    card = json.loads((ARTIFACTS / "ml" / "model_card.json").read_text())
    assert card["label"]["regime_seconds"] == spec.regime_seconds


def test_a_hole_restarts_the_regime_and_copies_are_ignored() -> None:
    spec = LabelSpec()
    labeller = LiveLabeller(spec)
    t0 = 1_000_000.0
    for k in range(spec.regime_seconds + spec.horizon):
        labeller.observe("BTC-USD", t0 + k, 1.0, {"baseline": 0.5})
    # The prediction at the first second with a full regime is labelled one horizon later.
    first = t0 + spec.regime_seconds - 1
    out = labeller.observe("BTC-USD", t0 + spec.regime_seconds + spec.horizon, 5.0, {})
    assert out is not None and out.time == first + 1 and out.label == 1.0
    assert labeller.observe("BTC-USD", t0 + 5, 9.0, {}) is None  # late copy: ignored
    # A hole: nothing is labelled until a new regime and horizon have passed.
    restart = t0 + 5000
    outs = [labeller.observe("BTC-USD", restart + k, 1.0, {}) for k in range(spec.regime_seconds)]
    assert outs == [None] * spec.regime_seconds


def test_products_beyond_the_bound_are_not_tracked() -> None:
    labeller = LiveLabeller(LabelSpec(), max_products=2)
    for name in ("A", "B", "C", "D"):
        labeller.observe(name, 1.0, 1.0, {})
    assert labeller.pending() == 0 and len(labeller._products) == 2


def test_quality_window_keeps_the_last_predictions() -> None:
    from volatility.scoring.live import Labelled

    quality = LiveQuality({"ml": 0.5}, window=4)
    for k, (score, label) in enumerate([(0.9, 0.0)] * 10 + [(0.9, 1.0), (0.1, 0.0)] * 2):
        quality.add(Labelled("BTC-USD", float(k), label, {"ml": score}))
    figures = quality.figures("ml", "BTC-USD")
    assert figures.labelled == 4 and figures.prevalence == 0.5
    assert figures.pr_auc == 1.0 and figures.precision == 1.0 and figures.recall == 1.0
    assert np.isnan(quality.figures("ml", "ETH-USD").pr_auc)


def test_sorted_quantile_is_numpy_quantile_to_the_bit() -> None:
    from volatility.scoring.live import sorted_quantile

    rng = np.random.default_rng(2)
    for n in (1, 2, 600, 601):
        for q in (0.1, 0.5, 0.9, 0.95):
            values = rng.lognormal(0.0, 1.0, n)
            assert sorted_quantile(sorted(values.tolist()), q) == float(np.quantile(values, q))
