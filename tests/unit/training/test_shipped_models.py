"""The committed models: loadable as served, honest metadata, and sensible behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml  # type: ignore[import-untyped]

from tests.conftest import REPO
from tests.unit.training.synthetic import calm_then_burst
from volatility.names import VARIANTS
from volatility.scoring.model import Model
from volatility.settings import ModelSettings
from volatility_training.cards import finite
from volatility_training.dataset import dataset_from_sessions, file_sha256
from volatility_training.evaluate import cross_validate_as_trained, ml_beats_baseline

ARTIFACTS = REPO / "models" / "artifacts"


@pytest.mark.parametrize("variant", VARIANTS)
def test_metadata_names_the_training_data_and_label(variant: str, recordings: list[Path]) -> None:
    contract = Model.load(ARTIFACTS, variant).contract  # type: ignore[arg-type]
    assert contract.horizon_seconds == 60.0 and contract.label_quantile == 0.9
    assert contract.label_regime_seconds == 600.0
    assert 0.0 < contract.threshold < 1.0
    files = {f["file"]: f["sha256"] for f in contract.extra["training_files"]}
    assert files == {p.name: file_sha256(p) for p in recordings}
    card = json.loads((ARTIFACTS / variant / "model_card.json").read_text())
    assert card["model_version"] == contract.version
    assert card["operating_threshold"] == contract.threshold
    setup = card["cross_validation"]["setup"]
    assert (setup["horizon_seconds"], setup["quantile"], setup["regime_seconds"]) == (60, 0.9, 600)
    report = card["cross_validation"]["report"]
    assert set(report["models"]) == {"baseline", "ml"}
    assert set(report["per_product"]) == {"BTC-USD", "ETH-USD"}
    # Every session long enough to carry labels is tested, by models that never saw it.
    labelled = {f["file"] for f in card["training"]["files"] if f["labelled_rows"]}
    assert {f["session"] for f in card["cross_validation"]["folds"]} == labelled
    assert {g.rsplit(" ", 1)[0] for g in report["per_session"]} == labelled
    assert report["within_session"]["all"]["groups"] >= 8
    assert 0.0 < report["session_oracle"]["pr_auc"] < 1.0
    for plot in card["plots"].values():
        assert (ARTIFACTS / variant / plot).stat().st_size > 1000


def test_the_default_variant_is_the_one_the_cross_validation_prefers() -> None:
    card = json.loads((ARTIFACTS / "ml" / "model_card.json").read_text())
    report = card["cross_validation"]["report"]
    preferred = "ml" if ml_beats_baseline(report) else "baseline"
    assert card["recommended_variant"] == preferred
    assert ModelSettings.model_fields["variant"].default == preferred
    values = yaml.safe_load((REPO / "charts" / "volatility" / "values.yaml").read_text())
    assert values["modelVariant"] == preferred
    markdown = (ARTIFACTS / "ml" / "model_card.md").read_text()
    if preferred == "baseline":
        assert "does not beat the baseline" in markdown


@pytest.mark.parametrize("seed", [0, 1])
def test_the_baseline_flags_a_burst_above_everything_before_it(seed: int) -> None:
    """Persistence relative to the product's regime: the first minute of a burst runs hotter
    than its 300 s level and is flagged; steady calm sits near its own level, below that."""
    model = Model.load(ARTIFACTS, "baseline")
    ticks, burst = calm_then_burst(seed=seed)
    ds = dataset_from_sessions([ticks])
    scores = model.score(ds.features.astype(np.float32))
    calm = ds.times < burst
    hot = (ds.times >= burst + 20) & (ds.times < burst + 60)
    assert calm.sum() > 200 and hot.sum() >= 40
    assert scores[calm].max() < scores[hot].min()
    assert scores[hot].min() > model.contract.threshold


def test_evaluate_reproduces_the_shipped_cards_cross_validation(recordings: list[Path]) -> None:
    """The figures the model cards publish are what `volatility evaluate --cross-validate`
    recomputes from the recordings (about a minute: the whole nested cross-validation)."""
    card = json.loads((ARTIFACTS / "ml" / "model_card.json").read_text())
    report = cross_validate_as_trained(recordings, ARTIFACTS)
    assert finite(report) == card["cross_validation"]["report"]
