"""``volatility drift-report``: recordings against the data the shipped models were trained on.

The reference is the training data itself: the files the model's metadata names, found in a
folder and checked by sha256, replayed through the feature engine like the recordings compared
with it. Evidently draws the report (per-feature distributions and drift tests, one
self-contained HTML file); the command also prints the PSI per feature that the services export
as ``volatility_feature_psi``, computed the same way (`volatility.scoring.drift`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from volatility_training.commands import DEFAULT_MODELS, add_data_argument

DEFAULT_TRAINING_DATA = Path("../shared/data/coinbase")
TOP = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_argument(parser)
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, metavar="DIR")
    parser.add_argument(
        "--training-data",
        type=Path,
        default=DEFAULT_TRAINING_DATA,
        metavar="DIR",
        help="folder holding the files the models were trained on (checked by sha256)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("drift-report.html"), metavar="FILE", help="HTML report"
    )


def training_paths(models: Path, folder: Path) -> list[Path]:
    """The model's training files, found in ``folder``; raises naming what is missing or differs."""
    from volatility.scoring.model import Model
    from volatility_training.dataset import file_sha256

    contract = Model.load(models, "baseline").contract
    paths: list[Path] = []
    for entry in contract.extra.get("training_files", []):
        path = folder / entry["file"]
        if not path.is_file():
            raise FileNotFoundError(f"training file {entry['file']} not found in {folder}")
        if file_sha256(path) != entry["sha256"]:
            raise ValueError(f"{path} is not the file the models were trained on (sha256 differs)")
        paths.append(path)
    if not paths:
        raise ValueError(f"{models}: the model names no training files")
    return paths


def run(args: argparse.Namespace) -> int:
    # Evidently's usage telemetry lives in its UI service; keep it off whatever it imports.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    import numpy as np
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from volatility.exchange.recordings import expand_paths
    from volatility.features.spec import FEATURE_NAMES
    from volatility.scoring.drift import bin_rows, psi, reference_from_features
    from volatility_training.dataset import build_dataset

    try:
        reference_files = training_paths(args.models, args.training_data)
    except (FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"volatility drift-report: {exc}\n")
        return 2
    reference = build_dataset(reference_files)
    current = build_dataset(expand_paths(args.data))
    if not len(current):
        sys.stderr.write("volatility drift-report: the recordings give no feature vector\n")
        return 2

    def frame(features: np.ndarray, products: np.ndarray) -> pd.DataFrame:
        df = pd.DataFrame(features, columns=list(FEATURE_NAMES))
        df["product"] = products.astype(str)
        return df

    definition = DataDefinition(
        numerical_columns=list(FEATURE_NAMES), categorical_columns=["product"]
    )
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(
            frame(current.features, current.products), data_definition=definition
        ),
        reference_data=Dataset.from_pandas(
            frame(reference.features, reference.products), data_definition=definition
        ),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(args.out))

    out = sys.stdout
    out.write(f"{args.out}: {len(current)} vectors against {len(reference)} training vectors\n")
    for product in sorted(set(current.products.tolist())):
        mine = reference.products == product
        if not mine.any():
            out.write(f"{product}: not in the training data\n")
            continue
        ref = reference_from_features(reference.features[mine])
        rows = current.features[current.products == product]
        bins = bin_rows(ref, rows)
        values = []
        for f, name in enumerate(FEATURE_NAMES):
            counts = np.bincount(bins[:, f], minlength=len(ref.shares[f]))
            values.append((psi(ref.shares[f], counts / counts.sum()), name))
        values.sort(reverse=True)
        top = ", ".join(f"{name} {value:.2f}" for value, name in values[:TOP])
        out.write(f"{product} ({len(rows)} vectors), PSI highest first: {top}\n")
    return 0
