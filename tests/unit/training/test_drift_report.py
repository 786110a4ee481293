"""`volatility drift-report`: recordings against the models' own training data, one HTML file."""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from volatility_training.drift_report import add_arguments, run

MODELS = REPO / "models" / "artifacts"


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_report_is_self_contained_and_psi_is_printed(
    recordings: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = next(p for p in recordings if p.name.startswith("20260403T221341Z"))
    out = tmp_path / "drift.html"
    argv = ["--data", str(session), "--models", str(MODELS), "--out", str(out)]
    argv += ["--training-data", str(recordings[0].parent)]
    assert run(_args(argv)) == 0
    html = out.read_text()
    assert len(html) > 100_000 and "rv_60s" in html and "tick_rate_300s" in html
    # Self-contained: no script or stylesheet is fetched from elsewhere.
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=[\"']https?:", html)
    printed = capsys.readouterr().out
    assert "BTC-USD" in printed and "ETH-USD" in printed and "PSI highest first" in printed


def test_training_files_must_be_the_ones_the_models_name(
    recordings: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for path in recordings[1:]:
        shutil.copy(path, folder / path.name)
    argv = ["--data", str(recordings[2]), "--models", str(MODELS), "--training-data", str(folder)]
    assert run(_args([*argv, "--out", str(tmp_path / "x.html")])) == 2
    assert f"training file {recordings[0].name} not found" in capsys.readouterr().err
    shutil.copy(recordings[2], folder / recordings[0].name)  # present, but another file
    assert run(_args([*argv, "--out", str(tmp_path / "x.html")])) == 2
    assert "sha256 differs" in capsys.readouterr().err
