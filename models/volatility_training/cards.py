"""Model cards: model_card.json (machine-readable) and model_card.md, with two plots."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from volatility.scoring.contract import ModelContract
from volatility_training.dataset import iso_utc
from volatility_training.evaluate import BASELINE, WalkForward
from volatility_training.plots import plot_calibration, plot_pr

ML = "ml"
PR_PLOT = "pr_curve.png"
CALIBRATION_PLOT = "calibration.png"
METRICS = ("pr_auc", "roc_auc", "precision", "recall", "brier", "ece")


def _finite(value: Any) -> Any:
    """JSON without NaN: undefined figures become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def known_limits(files: Sequence[dict[str, Any]], wf: WalkForward) -> list[str]:
    minutes = sum(f["rows"] for f in files) / 60.0
    fold_prevalence = [float(wf.labels[wf.folds == info["fold"]].mean()) for info in wf.fold_info]
    return [
        f"Trained on {len(files)} recorded sessions (~{minutes:.0f} product-minutes of vectors); "
        "few sessions, so walk-forward figures have wide uncertainty.",
        "Volatility regimes differ strongly between sessions: the spike rate of the walk-forward "
        f"test folds ranged from {min(fold_prevalence):.1%} to {max(fold_prevalence):.1%} against "
        "a 10% rate in training, so probabilities are not calibrated under regime change.",
        "ETH-USD appears in two sessions only; its figures rest on one session of test data.",
        "The model input carries no product identity: per-product thresholds only shape "
        "the labels.",
        "In session 20260404T031918Z best bid/ask were rebuilt from mid and spread by its source.",
        "Model selection used the same walk-forward folds that are reported (a few candidates), "
        "so the ML figures are slightly optimistic.",
    ]


def write_card(
    target: Path,
    contract: ModelContract,
    files: Sequence[dict[str, Any]],
    wf: WalkForward,
    candidates: Sequence[dict[str, Any]],
    parity_gap: float,
    prevalence: float,
) -> None:
    models = [BASELINE, ML]
    pooled = wf.summary(models)
    scores = {m: wf.scores[m] for m in models}
    plot_pr(wf.labels, scores, target / PR_PLOT)
    plot_calibration(wf.labels, scores, target / CALIBRATION_PLOT)
    extra = dict(contract.extra)
    card = {
        "variant": contract.variant,
        "model_version": contract.version,
        "predicts": (
            f"Probability that the realized volatility of mid-price log returns over the next "
            f"{contract.horizon_seconds:g} s (ticks with event time in [t, t + "
            f"{contract.horizon_seconds:g})) exceeds the {contract.label_quantile:.0%} quantile "
            "of that quantity for the product in the training data."
        ),
        "input": {
            "feature_names": list(contract.feature_names),
            "feature_spec_version": contract.feature_spec_version,
        },
        "estimator": extra.get("estimator"),
        "parameters": extra.get("parameters"),
        "operating_threshold": contract.threshold,
        "label": {
            "horizon_seconds": contract.horizon_seconds,
            "quantile": contract.label_quantile,
            "thresholds_bps_per_60s": dict(contract.label_thresholds),
            "training_spike_rate": prevalence,
        },
        "training": {
            "files": list(files),
            "rows": extra.get("training_rows"),
            "time_range": extra.get("time_range"),
            "seed": extra.get("seed"),
        },
        "walk_forward": {
            "method": "expanding window, time-ordered, gap >= horizon; pooled out-of-fold",
            "pooled": pooled,
            "folds": wf.per_fold(models),
        },
        "ml_candidates": list(candidates),
        "onnx_parity_max_abs_diff": parity_gap,
        "known_limits": known_limits(files, wf),
        "plots": {"pr_curve": PR_PLOT, "calibration": CALIBRATION_PLOT},
    }
    card = _finite(card)
    (target / "model_card.json").write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    (target / "model_card.md").write_text(render_markdown(card))


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _metrics_table(block: dict[str, Any]) -> list[str]:
    lines = ["| model | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name, values in block["models"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(values[m]) for m in METRICS) + " |")
    return lines


def render_markdown(card: dict[str, Any]) -> str:
    pooled = card["walk_forward"]["pooled"]
    out = [
        f"# Model card: {card['variant']} ({card['model_version']})",
        "",
        "## What it predicts",
        "",
        card["predicts"],
        "",
        f"Estimator: {card['estimator']}. Operating threshold on the spike probability: "
        f"{_fmt(card['operating_threshold'])} (best F1 on the training rows). Per-product label "
        "thresholds (bps per 60 s): "
        + ", ".join(f"{p} {v:.3f}" for p, v in card["label"]["thresholds_bps_per_60s"].items())
        + ".",
        "",
        "## Training data",
        "",
        "| file | sha256 | rows | start | end |",
        "|---|---|---|---|---|",
    ]
    for f in card["training"]["files"]:
        out.append(f"| {f['file']} | `{f['sha256']}` | {f['rows']} | {f['start']} | {f['end']} |")
    rng = card["training"]["time_range"]
    out += [
        "",
        f"Labelled training rows: {card['training']['rows']}; time range {rng['start']} to "
        f"{rng['end']}; seed {card['training']['seed']}.",
        "",
        "## Walk-forward evaluation (baseline side by side)",
        "",
        f"{card['walk_forward']['method']}. Rows {pooled['rows']}, spike rate "
        f"{_fmt(pooled['prevalence'])}. PR-AUC is average precision; compare it with the "
        "spike rate.",
        "",
        *_metrics_table(pooled),
        "",
    ]
    for product, block in pooled["per_product"].items():
        out += [f"### {product} (rows {block['rows']}, spike rate {_fmt(block['prevalence'])})", ""]
        out += [*_metrics_table(block), ""]
    out += [
        "### Per fold (PR-AUC, baseline / ml)",
        "",
        "| fold | train rows | test from | rows | spike rate | baseline | ml |",
        "|---|---|---|---|---|---|---|",
    ]
    for fold in card["walk_forward"]["folds"]:
        m = fold["models"]
        cells = [
            str(fold["fold"]),
            str(fold["train_rows"]),
            iso_utc(fold["test_from"]),
            str(fold["rows"]),
            _fmt(fold["prevalence"]),
            _fmt(m["baseline"]["pr_auc"]),
            _fmt(m["ml"]["pr_auc"]),
        ]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "### ML candidates (chosen: largest worst-case PR-AUC gain over baseline)", ""]
    for c in card["ml_candidates"]:
        gains = ", ".join(f"{k} {_fmt(v)}" for k, v in c["pr_auc_gain"].items())
        out.append(f"- {c['candidate']}: {c['description']}; PR-AUC gain {gains}")
    plots, parity = card["plots"], card["onnx_parity_max_abs_diff"]
    out += [
        "",
        f"![precision-recall]({plots['pr_curve']}) ![calibration]({plots['calibration']})",
        "",
        f"ONNX vs in-memory probabilities: max abs difference {parity:.2g}.",
        "",
        "## Known limits",
        "",
        *[f"- {line}" for line in card["known_limits"]],
        "",
    ]
    return "\n".join(out)
