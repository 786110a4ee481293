"""The ``volatility train`` and ``volatility evaluate`` commands (argparse parts and runners)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from volatility.scoring.target_defaults import (
    DEFAULT_HORIZON,
    DEFAULT_QUANTILE,
    DEFAULT_REGIME_SECONDS,
)

DEFAULT_MODELS = Path("models/artifacts")


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        required=True,
        metavar="FILE",
        help="recordings (.ndjson files, or folders of them)",
    )


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_argument(parser)
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_MODELS, metavar="DIR", help="writes DIR/<variant>/"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--horizon", type=int, default=DEFAULT_HORIZON, help="label horizon, seconds"
    )
    parser.add_argument(
        "--quantile",
        type=float,
        default=DEFAULT_QUANTILE,
        help="a spike exceeds this quantile of the product's recent regime",
    )
    parser.add_argument(
        "--regime-seconds",
        type=int,
        default=DEFAULT_REGIME_SECONDS,
        help="seconds of past that set the product's regime level (at least 600)",
    )


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_argument(parser)
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, metavar="DIR")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--cross-validate",
        action="store_true",
        help="re-run the session-grouped cross-validation the model card reports (as trained) "
        "on these recordings, instead of scoring them with the shipped models",
    )


def run_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from volatility.exchange.recordings import expand_paths
    from volatility_training.candidates import CANDIDATES
    from volatility_training.labels import LabelSpec
    from volatility_training.tracking import log_run
    from volatility_training.train import TrainConfig, train

    paths = expand_paths(args.data)
    try:
        spec = LabelSpec(
            horizon=args.horizon, quantile=args.quantile, regime_seconds=args.regime_seconds
        )
    except ValueError as exc:
        sys.stderr.write(f"volatility train: {exc}\n")
        return 2
    config = TrainConfig(seed=args.seed, spec=spec, candidates=CANDIDATES)
    # Files read, at most one cross-validation fold per session, the final fit, two exports.
    total = 2 * len(paths) + 3
    with tqdm(total=total, desc="train", unit="step", file=sys.stderr) as bar:

        def step(message: str) -> None:
            bar.set_postfix_str(message, refresh=False)
            bar.update()

        trained = train(paths, args.out, config, progress=step)
        bar.total = bar.n
        bar.refresh()
    for variant, result in trained.items():
        contract = result.contract
        _out(
            f"{variant}: {result.path} (version {contract.version}, operating threshold "
            f"{contract.threshold:.4f}, parity gap {result.parity_gap:.2g})"
        )
    card = json.loads((args.out / "ml" / "model_card.json").read_text())
    pooled = card["cross_validation"]["report"]["models"]
    _out(f"recommended default variant: {card['recommended_variant']}")
    params = {"seed": args.seed, "horizon": args.horizon, "quantile": args.quantile}
    params["regime_seconds"] = args.regime_seconds
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
    from volatility_training.cards import finite
    from volatility_training.evaluate import cross_validate_as_trained, evaluate_models

    paths = expand_paths(args.data)
    if args.cross_validate:
        summary = cross_validate_as_trained(paths, args.models)
    else:
        summary = evaluate_models(paths, args.models)
    if args.json:
        _out(json.dumps(finite(summary), sort_keys=True))
        return 0
    _out(f"rows {summary['rows']}, spike rate {summary['prevalence']:.3f}")
    blocks = [("all", summary), *summary["per_product"].items(), *summary["per_session"].items()]
    for name, block in blocks:
        _out(f"\n{name} (rows {block['rows']}, spike rate {block['prevalence']:.3f})")
        _out(f"  {'model':10s}" + "".join(f"{m:>10s}" for m in _METRICS))
        for model, values in block["models"].items():
            _out(f"  {model:10s}" + "".join(f"{values[m]:10.3f}" for m in _METRICS))
    _out("\nwithin sessions (means over session-product groups with both classes)")
    for scope, block in summary["within_session"].items():
        for model, values in block.get("models", {}).items():
            cells = " ".join(f"{k} {v:.3f}" for k, v in values.items())
            _out(f"  {scope:8s} {model:10s} groups {block['groups']}: {cells}")
    oracle = summary["session_oracle"]
    _out(f"session oracle: pr_auc {oracle['pr_auc']:.3f}, roc_auc {oracle['roc_auc']:.3f}")
    return 0


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


_METRICS = ("pr_auc", "roc_auc", "precision", "recall", "brier", "ece")
