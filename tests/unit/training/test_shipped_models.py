"""The committed models: loadable as served, honest metadata, and sensible behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.unit.training.synthetic import calm_then_burst
from volatility.names import VARIANTS
from volatility.scoring.model import Model
from volatility_training.dataset import dataset_from_sessions, file_sha256

ARTIFACTS = REPO / "models" / "artifacts"


@pytest.mark.parametrize("variant", VARIANTS)
def test_metadata_names_the_training_data_and_label(variant: str, recordings: list[Path]) -> None:
    contract = Model.load(ARTIFACTS, variant).contract  # type: ignore[arg-type]
    assert contract.horizon_seconds == 60.0 and contract.label_quantile == 0.9
    assert set(contract.label_thresholds) == {"BTC-USD", "ETH-USD"}
    assert all(v > 0 for v in contract.label_thresholds.values())
    assert 0.0 < contract.threshold < 1.0
    files = {f["file"]: f["sha256"] for f in contract.extra["training_files"]}
    assert files == {p.name: file_sha256(p) for p in recordings}
    card = json.loads((ARTIFACTS / variant / "model_card.json").read_text())
    assert card["model_version"] == contract.version
    assert card["label"]["thresholds_bps_per_60s"] == dict(contract.label_thresholds)
    pooled = card["walk_forward"]["pooled"]
    assert set(pooled["models"]) == {"baseline", "ml"}
    assert set(pooled["per_product"]) == {"BTC-USD", "ETH-USD"}
    for plot in card["plots"].values():
        assert (ARTIFACTS / variant / plot).stat().st_size > 1000


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("seed", [0, 1])
def test_calm_scores_low_and_burst_scores_high(variant: str, seed: int) -> None:
    model = Model.load(ARTIFACTS, variant)  # type: ignore[arg-type]
    ticks, burst = calm_then_burst(seed=seed)
    ds = dataset_from_sessions([ticks])
    scores = model.score(ds.features.astype(np.float32))
    calm = ds.times < burst
    hot = ds.times >= burst + 30
    assert calm.sum() > 200 and hot.sum() > 60
    assert scores[calm].max() < model.contract.threshold < scores[hot].min()
