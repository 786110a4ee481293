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
from volatility_training.labels import LabelSpec, label_dataset
from volatility_training.tracking import TRACKING_ENV

METRICS = {"pr_auc", "roc_auc", "precision", "recall", "brier", "ece"}
REPORT = {
    "rows",
    "prevalence",
    "models",
    "per_product",
    "per_session",
    "within_session",
    "session_oracle",
}
# Three short sessions, one with both products: enough for nested leave-one-session-out.
SMALL = ("20251206T011247Z", "20260403T221341Z", "20260404T211343Z")


def _parse(add: object, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add(parser)  # type: ignore[operator]
    return parser.parse_args(argv)


def _pick(recordings: list[Path], prefixes: tuple[str, ...]) -> list[Path]:
    picked = [p for p in recordings if p.name.startswith(prefixes)]
    assert len(picked) == len(prefixes)
    return picked


def test_evaluate_json_shape(recordings: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    data = _pick(recordings, ("20260404T031918Z",))  # BTC-USD and ETH-USD
    models = REPO / "models" / "artifacts"
    argv = ["--data", str(data[0]), "--models", str(models), "--json"]
    assert run_evaluate(_parse(add_evaluate_arguments, argv)) == 0
    out = json.loads(capsys.readouterr().out)  # exactly one JSON object
    assert set(out) == REPORT
    assert set(out["models"]) == {"baseline", "ml"}
    assert all(set(m) == METRICS for m in out["models"].values())
    assert set(out["per_product"]) == {"BTC-USD", "ETH-USD"}
    assert set(out["per_session"]) == {f"{data[0].name} BTC-USD", f"{data[0].name} ETH-USD"}
    assert out["within_session"]["all"]["groups"] == 2
    assert set(out["within_session"]["all"]["models"]["ml"]) == {
        "roc_auc_mean",
        "pr_auc_mean",
        "pr_auc_lift_mean",
    }
    # Labelled with the definition stored in the model, nothing refitted on these rows.
    labels = label_dataset(build_dataset(data), LabelSpec(60, 0.9, 600))
    assert out["rows"] == int(np.sum(~np.isnan(labels)))
    assert out["prevalence"] == pytest.approx(float(np.nanmean(labels)))
    assert sum(p["rows"] for p in out["per_product"].values()) == out["rows"]


def test_train_is_deterministic_and_evaluate_reproduces_its_cross_validation(
    recordings: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(TRACKING_ENV, raising=False)
    data = [str(p) for p in _pick(recordings, SMALL)]
    outputs = []
    for run in ("a", "b"):
        argv = ["--data", *data, "--out", str(tmp_path / run), "--seed", "7"]
        assert run_train(_parse(add_train_arguments, argv)) == 0
        outputs.append(tmp_path / run)
    for variant in ("baseline", "ml"):
        first, second = (o / variant for o in outputs)
        assert (first / "model.onnx").read_bytes() == (second / "model.onnx").read_bytes()
        assert (first / "model_card.json").read_text() == (second / "model_card.json").read_text()
        for name in ("model_card.md", "pr_curve.png", "calibration.png", "sessions.png"):
            assert (first / name).is_file()
        card = json.loads((first / "model_card.json").read_text())
        assert [f["file"] for f in card["training"]["files"]] == [Path(d).name for d in data]
        assert card["onnx_parity_max_abs_diff"] <= 1e-5
        tested = {f["session"] for f in card["cross_validation"]["folds"]}
        assert tested == {Path(d).name for d in data}
    assert "mlflow" not in sys.modules  # tracking stays off without a tracking URI
    capsys.readouterr()

    argv = ["--data", *data, "--models", str(outputs[0]), "--json", "--cross-validate"]
    assert run_evaluate(_parse(add_evaluate_arguments, argv)) == 0
    reproduced = json.loads(capsys.readouterr().out)
    card = json.loads((outputs[0] / "ml" / "model_card.json").read_text())
    assert reproduced == card["cross_validation"]["report"]
    assert set(reproduced) == REPORT


def test_train_refuses_a_regime_shorter_than_ten_minutes(
    recordings: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--data", str(recordings[0]), "--out", str(tmp_path), "--regime-seconds", "300"]
    assert run_train(_parse(add_train_arguments, argv)) == 2
    assert "regime_seconds must be at least 600" in capsys.readouterr().err
