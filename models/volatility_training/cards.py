"""Model cards: model_card.json (machine-readable) and model_card.md, with three plots."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from volatility.scoring.contract import ModelContract
from volatility_training.evaluate import BASELINE, ML, CrossValidation, Summary
from volatility_training.plots import plot_calibration, plot_pr, plot_sessions

PR_PLOT = "pr_curve.png"
CALIBRATION_PLOT = "calibration.png"
SESSIONS_PLOT = "sessions.png"
METRICS = ("pr_auc", "roc_auc", "precision", "recall", "brier", "ece")


def finite(value: Any) -> Any:
    """JSON without NaN: undefined figures become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def why_this_target(horizon: int, quantile: float, regime: int) -> list[str]:
    return [
        f"Horizon {horizon} s: the next minute is what a trader or a risk limit can still act on "
        "(widen quotes, cut leverage), and it is the horizon the data supports best: it labels "
        "the most rows and sessions, while 300 s windows overlap so much that 10 minutes of "
        "past hold only two independent ones.",
        f"Regime {regime} s: the shortest past the level can be estimated robustly from (ten "
        "minutes of one-minute windows); sessions shorter than that plus the horizon carry no "
        "label.",
        f"Quantile {quantile:g}: a spike is rare for the product's own recent past; higher "
        "quantiles leave several sessions with no spike at all.",
        "Relative to the product's own regime, not an absolute level: with an absolute threshold "
        "the session a row belongs to explained most of the label (whole sessions calm or "
        "spiking), and models learnt to tell calm recordings from busy ones.",
    ]


def known_limits(
    files: Sequence[dict[str, Any]],
    report: Summary,
    beats: bool,
    baseline_at_one: float,
    baseline_threshold: float,
) -> list[str]:
    minutes = sum(f["rows"] for f in files) / 60.0
    labelled = [f for f in files if f["labelled_rows"]]
    within = report["within_session"]["all"].get("models", {})
    oracle = report["session_oracle"]["pr_auc"]
    lines = [
        f"Trained on {len(files)} recorded sessions (~{minutes:.0f} product-minutes of vectors), "
        f"{len(labelled)} of them long enough to carry labels: the figures have wide "
        "uncertainty.",
        "Within a session the next minute's volatility is hardly predictable from the last "
        "few minutes: each window is driven by a few jumps. Within-session ROC-AUC means are "
        + ", ".join(f"{name} {_fmt(values['roc_auc_mean'])}" for name, values in within.items())
        + f"; the session oracle (knowing only each session's spike rate) reaches a pooled "
        f"PR-AUC of {_fmt(oracle)}.",
        "ETH-USD appears in two sessions only.",
        "In the first 300 s of a product's history the 300 s window covers no more than the "
        "last minute, so vol_ratio_60_300 sits near 1: the baseline then scores "
        f"{baseline_at_one:.3f} (operating threshold {baseline_threshold:.3f}) whatever the "
        "market does. Those rows carry no label (the regime needs 600 s) and are not in the "
        "figures above.",
        "In session 20260404T031918Z best bid/ask were rebuilt from mid and spread by its source.",
    ]
    if not beats:
        lines.insert(
            0,
            "The ML variant does not beat the baseline on sessions it never saw (pooled and "
            "within-session PR-AUC together): the baseline stays the default variant. The ML "
            "variant is shipped to be compared live beside it, not as an improvement.",
        )
    return lines


def write_card(
    target: Path,
    contract: ModelContract,
    files: Sequence[dict[str, Any]],
    cv: CrossValidation,
    report: Summary,
    setup: dict[str, Any],
    final_selection: dict[str, Any],
    parity_gap: float,
    prevalence: float,
    baseline_at_one: float,
    baseline_threshold: float,
) -> None:
    models = [BASELINE, ML]
    scores = {m: cv.scores[m] for m in models}
    plot_pr(cv.labels, scores, target / PR_PLOT)
    plot_calibration(cv.labels, scores, target / CALIBRATION_PLOT)
    plot_sessions(report["per_session"], models, target / SESSIONS_PLOT)
    extra = dict(contract.extra)
    horizon, regime = int(contract.horizon_seconds), int(contract.label_regime_seconds)
    card = {
        "variant": contract.variant,
        "model_version": contract.version,
        "recommended_variant": extra.get("recommended_variant"),
        "predicts": (
            f"Probability that the realized volatility of mid-price log returns over the next "
            f"{horizon} s (ticks with event time in [t, t + {horizon})) exceeds the "
            f"{contract.label_quantile:g} quantile of the product's own {horizon} s realized "
            f"volatility over the {regime} s up to t (its recent regime, known at t)."
        ),
        "input": {
            "feature_names": list(contract.feature_names),
            "feature_spec_version": contract.feature_spec_version,
        },
        "estimator": extra.get("estimator"),
        "parameters": extra.get("parameters"),
        "operating_threshold": contract.threshold,
        "label": {
            "horizon_seconds": horizon,
            "quantile": contract.label_quantile,
            "regime_seconds": regime,
            "why": why_this_target(horizon, contract.label_quantile, regime),
            "training_spike_rate": prevalence,
        },
        "training": {
            "files": list(files),
            "rows": extra.get("training_rows"),
            "time_range": extra.get("time_range"),
            "seed": extra.get("seed"),
            "selection": final_selection,
        },
        "cross_validation": {"setup": setup, "report": report, "folds": cv.folds},
        "onnx_parity_max_abs_diff": parity_gap,
        "known_limits": known_limits(
            files,
            report,
            extra.get("recommended_variant") == ML,
            baseline_at_one,
            baseline_threshold,
        ),
        "plots": {"pr_curve": PR_PLOT, "calibration": CALIBRATION_PLOT, "sessions": SESSIONS_PLOT},
    }
    card = finite(card)
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
    cv = card["cross_validation"]
    report, setup = cv["report"], cv["setup"]
    label = card["label"]
    out = [
        f"# Model card: {card['variant']} ({card['model_version']})",
        "",
        "## What it predicts",
        "",
        card["predicts"],
        "",
        *[f"- {line}" for line in label["why"]],
        "",
        f"Estimator: {card['estimator']}. Operating threshold on the spike probability: "
        f"{_fmt(card['operating_threshold'])}, chosen as the best F1 on out-of-fold scores "
        "(leave-one-session-out over the training sessions), never on rows the model was "
        f"fitted on. Default variant recommended by the cross-validation: "
        f"**{card['recommended_variant']}**.",
        "",
        "## Training data",
        "",
        "| file | sha256 | rows | labelled rows | start | end |",
        "|---|---|---|---|---|---|",
    ]
    for f in card["training"]["files"]:
        out.append(
            f"| {f['file']} | `{f['sha256'][:16]}` | {f['rows']} | {f['labelled_rows']} "
            f"| {f['start']} | {f['end']} |"
        )
    rng = card["training"]["time_range"]
    sel = card["training"]["selection"]
    out += [
        "",
        f"Labelled training rows: {card['training']['rows']}; time range {rng['start']} to "
        f"{rng['end']}; seed {card['training']['seed']}. ML candidate chosen over every "
        f"session: {sel['chosen']} (out-of-fold PR-AUC "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in sel["pr_auc"].items())
        + ").",
        "",
        "## Cross-validated figures (every session tested by models that never saw it)",
        "",
        f"{setup['method']}. Rows {report['rows']}, spike rate {_fmt(report['prevalence'])}. "
        "PR-AUC is average precision: compare it with the spike rate. `ml` is the whole "
        "procedure (candidate chosen inside each fold), not one fixed candidate.",
        "",
        "### Pooled",
        "",
        *_metrics_table(report),
        "",
        f"Session oracle (a score that knows only each session's spike rate): PR-AUC "
        f"{_fmt(report['session_oracle']['pr_auc'])}, ROC-AUC "
        f"{_fmt(report['session_oracle']['roc_auc'])}.",
        "",
    ]
    for product, block in report["per_product"].items():
        out += [f"### {product} (rows {block['rows']}, spike rate {_fmt(block['prevalence'])})", ""]
        out += [*_metrics_table(block), ""]
    out += ["### Within sessions (means over session-product groups with both classes)", ""]
    out += ["| scope | groups | model | ROC-AUC | PR-AUC | PR-AUC - spike rate |", "|---" * 6 + "|"]
    for scope, block in report["within_session"].items():
        for name, values in block.get("models", {}).items():
            out.append(
                f"| {scope} | {block['groups']} | {name} | {_fmt(values['roc_auc_mean'])} "
                f"| {_fmt(values['pr_auc_mean'])} | {_fmt(values['pr_auc_lift_mean'])} |"
            )
    out += [
        "",
        "### Per session and product",
        "",
        "| session | product | rows | spike rate | ROC-AUC baseline | ROC-AUC ml "
        "| PR-AUC baseline | PR-AUC ml |",
        "|---" * 8 + "|",
    ]
    for group, block in report["per_session"].items():
        session, product = group.rsplit(" ", 1)
        m = block["models"]
        out.append(
            f"| {session} | {product} | {block['rows']} | {_fmt(block['prevalence'])} "
            f"| {_fmt(m[BASELINE]['roc_auc'])} | {_fmt(m[ML]['roc_auc'])} "
            f"| {_fmt(m[BASELINE]['pr_auc'])} | {_fmt(m[ML]['pr_auc'])} |"
        )
    out += ["", "### Per fold: the candidate chosen inside", ""]
    out += ["| test session | train sessions | chosen | inner PR-AUC |", "|---|---|---|---|"]
    for fold in cv["folds"]:
        inner = ", ".join(f"{k} {_fmt(v)}" for k, v in fold["inner_pr_auc"].items())
        out.append(f"| {fold['session']} | {fold['train_sessions']} | {fold['chosen']} | {inner} |")
    plots, parity = card["plots"], card["onnx_parity_max_abs_diff"]
    out += [
        "",
        f"![precision-recall]({plots['pr_curve']}) ![calibration]({plots['calibration']})",
        "",
        f"![per session]({plots['sessions']})",
        "",
        f"ONNX vs in-memory probabilities: max abs difference {parity:.2g}. Both variants "
        "refuse the same inputs: a negative value in a never-negative feature scores NaN.",
        "",
        "## Known limits",
        "",
        *[f"- {line}" for line in card["known_limits"]],
        "",
        "Reproduce: `make train` rebuilds these files; `volatility evaluate --cross-validate "
        "--data ../shared/data/coinbase` recomputes the cross-validated figures above.",
        "",
    ]
    return "\n".join(out)
