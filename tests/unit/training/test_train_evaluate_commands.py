"""`volatility train` and `volatility evaluate`, run through their argparse parts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from volatility_training.commands import (
    add_evaluate_arguments,
    add_train_arguments,
    run_evaluate,
    run_train,
)
from volatility_training.dataset import build_dataset
from volatility_training.labels import apply_labels, forward_volatility
from volatility_training.tracking import TRACKING_ENV

METRICS = {"pr_auc", "roc_auc", "precision", "recall", "brier", "ece"}


def _parse(add: object, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add(parser)  # type: ignore[operator]
    return parser.parse_args(argv)


def test_evaluate_json_shape(recordings: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    data = recordings[3]  # BTC-USD and ETH-USD
    models = REPO / "models" / "artifacts"
    args = _parse(add_evaluate_arguments, ["--data", str(data), "--models", str(models), "--json"])
    assert run_evaluate(args) == 0
    out = json.loads(capsys.readouterr().out)  # exactly one JSON object
    assert set(out) == {"rows", "prevalence", "models", "per_product"}
    assert set(out["models"]) == {"baseline", "ml"}
    assert all(set(m) == METRICS for m in out["models"].values())
    assert set(out["per_product"]) == {"BTC-USD", "ETH-USD"}
    # Labelled with the thresholds stored in the model, not refitted on these rows.
    card = json.loads((models / "ml" / "model_card.json").read_text())
    ds = build_dataset([data])
    labels = apply_labels(
        ds.products, forward_volatility(ds, 60), card["label"]["thresholds_bps_per_60s"]
    )
    assert out["rows"] == int(np.sum(~np.isnan(labels)))
    assert out["prevalence"] == pytest.approx(float(np.nanmean(labels)))
    assert sum(p["rows"] for p in out["per_product"].values()) == out["rows"]


def test_train_is_deterministic_and_writes_both_variants(
    recordings: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TRACKING_ENV, raising=False)
    data = [str(recordings[3]), str(recordings[5])]
    outputs = []
    for run in ("a", "b"):
        argv = ["--data", *data, "--out", str(tmp_path / run), "--seed", "7", "--folds", "2"]
        assert run_train(_parse(add_train_arguments, argv)) == 0
        outputs.append(tmp_path / run)
    for variant in ("baseline", "ml"):
        first, second = (o / variant for o in outputs)
        assert (first / "model.onnx").read_bytes() == (second / "model.onnx").read_bytes()
        for name in ("model_card.json", "model_card.md", "pr_curve.png", "calibration.png"):
            assert (first / name).is_file()
        card = json.loads((first / "model_card.json").read_text())
        assert [f["file"] for f in card["training"]["files"]] == [Path(d).name for d in data]
        assert card["onnx_parity_max_abs_diff"] <= 1e-5
    assert "mlflow" not in sys.modules  # tracking stays off without a tracking URI
