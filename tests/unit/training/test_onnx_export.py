"""ONNX export: parity with in-memory models, the scoring contract, refusal of mismatches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.unit.training.synthetic import calm_then_burst
from volatility.features.spec import FEATURE_NAMES, FEATURE_SPEC_VERSION
from volatility.scoring.contract import ModelContract, ModelContractError
from volatility.scoring.model import Model
from volatility_training.baseline import BaselineRule
from volatility_training.candidates import CANDIDATES, fit
from volatility_training.dataset import Dataset, build_dataset, dataset_from_sessions
from volatility_training.export import (
    ParityError,
    assert_parity,
    fitted_to_onnx,
    onnx_probabilities,
)
from volatility_training.labels import LabelSpec, label_dataset


def _contract(variant: str = "ml", names: tuple[str, ...] = FEATURE_NAMES) -> ModelContract:
    return ModelContract(
        variant=variant,  # type: ignore[arg-type]
        version="test",
        feature_names=names,
        feature_spec_version=FEATURE_SPEC_VERSION,
        threshold=0.4,
        horizon_seconds=60.0,
        label_quantile=0.9,
        label_regime_seconds=600.0,
        extra={"training_files": []},
    )


@pytest.fixture(scope="module")
def split(recordings: list[Path]) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """A recording and a synthetic burst, labelled."""
    real = build_dataset([p for p in recordings if p.name.startswith("20251206T011247Z")])
    ticks, _ = calm_then_burst(seed=2, calm_s=780)
    synthetic = dataset_from_sessions([ticks])
    ds = Dataset(
        features=np.vstack([real.features, synthetic.features]),
        times=np.r_[real.times, synthetic.times],
        products=np.r_[real.products, synthetic.products],
        sessions=np.r_[real.sessions, synthetic.sessions + 1],
        histories=np.r_[real.histories, synthetic.histories + 1],
        files=real.files,
    )
    labels = label_dataset(ds, LabelSpec())
    rows = np.flatnonzero(~np.isnan(labels))
    return ds, rows, labels


@pytest.mark.parametrize("name", [c.name for c in CANDIDATES])
def test_ml_candidates_export_with_parity(
    name: str, split: tuple[Dataset, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    ds, rows, labels = split
    train, test = rows[::2], rows[1::2]  # parity only: no forecasting claim here
    cand = next(c for c in CANDIDATES if c.name == name)
    model = fit(cand, ds.features[train], labels[train], seed=0)
    onnx_model = fitted_to_onnx(model, _contract().to_metadata())
    assert [i.name for i in onnx_model.graph.input] == ["features"]
    assert [o.name for o in onnx_model.graph.output] == ["probabilities"]
    data = onnx_model.SerializeToString()
    gap = assert_parity(data, model.predict_proba, ds.features[test])
    assert gap <= 1e-5
    # The served path agrees too, and a disagreeing reference is refused.
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "model.onnx").write_bytes(data)
    served = Model.load(tmp_path, "ml").score(ds.features[test].astype(np.float32))
    assert np.max(np.abs(served - model.predict_proba(ds.features[test]))) <= 1e-5
    with pytest.raises(ParityError):
        assert_parity(data, lambda x: model.predict_proba(x) + 1e-3, ds.features[test])


def test_baseline_export_with_parity_and_metadata(
    split: tuple[Dataset, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    ds, rows, _ = split
    rule = BaselineRule.fit(ds.features[rows])
    data = rule.to_onnx(_contract("baseline").to_metadata()).SerializeToString()
    assert assert_parity(data, rule.predict_proba, ds.features[rows]) <= 1e-5
    (tmp_path / "baseline").mkdir()
    (tmp_path / "baseline" / "model.onnx").write_bytes(data)
    contract = Model.load(tmp_path, "baseline").contract
    assert contract.variant == "baseline"
    assert contract.label_quantile == 0.9 and contract.label_regime_seconds == 600.0
    assert contract.horizon_seconds == 60.0 and contract.threshold == 0.4


def test_a_model_with_other_features_is_refused_naming_them(
    split: tuple[Dataset, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    ds, rows, labels = split
    renamed = tuple("rv_5s" if n == "rv_10s" else n for n in FEATURE_NAMES)
    model = fit(CANDIDATES[0], ds.features[rows], labels[rows], seed=0)
    onnx_model = fitted_to_onnx(model, _contract(names=renamed).to_metadata())
    (tmp_path / "ml").mkdir()
    onnx.save(onnx_model, tmp_path / "ml" / "model.onnx")
    with pytest.raises(ModelContractError) as caught:
        Model.load(tmp_path, "ml")
    assert "rv_5s" in str(caught.value) and "rv_10s" in str(caught.value)


def test_both_variants_refuse_the_same_inputs(
    split: tuple[Dataset, np.ndarray, np.ndarray],
) -> None:
    """A negative value in a never-negative feature scores NaN in every graph (the services
    answer 4xx for it); the signed mean returns may be negative."""
    ds, rows, labels = split
    graphs = {"baseline": BaselineRule.fit(ds.features[rows]).to_onnx({})}
    for cand in CANDIDATES:
        graphs[cand.name] = fitted_to_onnx(fit(cand, ds.features[rows], labels[rows], 0), {})
    base = ds.features[rows[:1]].astype(np.float32)
    probes = []
    for name in FEATURE_NAMES:
        for value in (-1.0, -1e-4):
            row = base.copy()
            row[0, FEATURE_NAMES.index(name)] = value
            probes.append((name, row))
    for graph_name, graph in graphs.items():
        data = graph.SerializeToString()
        for name, row in probes:
            score = onnx_probabilities(data, row)[0]
            if name.startswith("ret_mean_"):
                assert np.isfinite(score), (graph_name, name)
            else:
                assert np.isnan(score), (graph_name, name)
