"""The ``volatility train`` and ``volatility evaluate`` commands (argparse parts and runners)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from volatility_training.labels import DEFAULT_HORIZON, DEFAULT_QUANTILE

DEFAULT_MODELS = Path("models/artifacts")


def _add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        required=True,
        metavar="FILE",
        help="recordings (.ndjson files, or folders of them)",
    )


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    _add_data_argument(parser)
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_MODELS, metavar="DIR", help="writes DIR/<variant>/"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=4, help="walk-forward folds")
    parser.add_argument(
        "--horizon", type=int, default=DEFAULT_HORIZON, help="label horizon, seconds"
    )
    parser.add_argument("--quantile", type=float, default=DEFAULT_QUANTILE, help="label quantile")


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_data_argument(parser)
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, metavar="DIR")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from volatility.exchange.recordings import expand_paths
    from volatility_training.candidates import CANDIDATES
    from volatility_training.labels import LabelSpec
    from volatility_training.tracking import log_run
    from volatility_training.train import TrainConfig, train

    paths = expand_paths(args.data)
    config = TrainConfig(
        seed=args.seed,
        n_folds=args.folds,
        spec=LabelSpec(horizon=args.horizon, quantile=args.quantile),
    )
    # Files read, each fold's models, the final fit, two exports.
    total = len(paths) + args.folds * (1 + len(CANDIDATES)) + 3
    with tqdm(total=total, desc="train", unit="step", file=sys.stderr) as bar:

        def step(message: str) -> None:
            bar.set_postfix_str(message, refresh=False)
            bar.update()

        trained = train(paths, args.out, config, progress=step)
    for variant, result in trained.items():
        contract = result.contract
        _out(
            f"{variant}: {result.path} (version {contract.version}, operating threshold "
            f"{contract.threshold:.4f}, parity gap {result.parity_gap:.2g})"
        )
    card = json.loads((args.out / "ml" / "model_card.json").read_text())
    pooled = card["walk_forward"]["pooled"]["models"]
    params = {"seed": args.seed, "folds": args.folds, "horizon": args.horizon}
    params["quantile"] = args.quantile
    figures = {
        f"{model}_{name}": float(value)
        for model, values in pooled.items()
        for name, value in values.items()
        if value is not None
    }
    log_run(params, figures, args.out)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from volatility.exchange.recordings import expand_paths
    from volatility_training.evaluate import evaluate_models

    summary = evaluate_models(expand_paths(args.data), args.models)
    if args.json:
        _out(json.dumps(_finite(summary), sort_keys=True))
        return 0
    _out(f"rows {summary['rows']}, spike rate {summary['prevalence']:.3f}")
    blocks = [("all", summary), *summary["per_product"].items()]
    for name, block in blocks:
        _out(f"\n{name} (rows {block['rows']}, spike rate {block['prevalence']:.3f})")
        _out(f"  {'model':10s}" + "".join(f"{m:>10s}" for m in _METRICS))
        for model, values in block["models"].items():
            _out(f"  {model:10s}" + "".join(f"{values[m]:10.3f}" for m in _METRICS))
    return 0


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


_METRICS = ("pr_auc", "roc_auc", "precision", "recall", "brier", "ece")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value
