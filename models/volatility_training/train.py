"""Training: walk-forward selection, final fits on every row, ONNX export, metadata and cards."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from volatility.features.spec import FEATURE_NAMES, FEATURE_SPEC_VERSION
from volatility.names import VariantName
from volatility.scoring.contract import MODEL_FILE, ModelContract
from volatility_training.baseline import BASELINE_FEATURE, BaselineRule
from volatility_training.candidates import CANDIDATES, Candidate, fit
from volatility_training.dataset import Dataset, build_dataset, file_sha256, iso_utc
from volatility_training.evaluate import (
    BASELINE,
    WalkForward,
    pr_auc_gains,
    selection_score,
    walk_forward,
)
from volatility_training.export import assert_parity, fitted_to_onnx
from volatility_training.labels import (
    LabelSpec,
    apply_labels,
    fit_label_thresholds,
    forward_volatility,
)
from volatility_training.metrics import best_f1_threshold

ML = "ml"


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    n_folds: int = 4
    spec: LabelSpec = field(default_factory=LabelSpec)
    candidates: tuple[Candidate, ...] = CANDIDATES


@dataclass(frozen=True)
class TrainedVariant:
    variant: VariantName
    path: Path
    contract: ModelContract
    parity_gap: float


def training_files(ds: Dataset) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for session, path in enumerate(ds.files):
        times = ds.times[ds.sessions == session]
        out.append(
            {
                "file": path.name,
                "sha256": file_sha256(path),
                "rows": len(times),
                "start": iso_utc(float(times.min())) if len(times) else None,
                "end": iso_utc(float(times.max())) if len(times) else None,
            }
        )
    return out


Predict = Callable[[np.ndarray], np.ndarray]


def _fitter(cand: Candidate, seed: int) -> Callable[[np.ndarray, np.ndarray], Predict]:
    def fit_one(features: np.ndarray, labels: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        return fit(cand, features, labels, seed).predict_proba

    return fit_one


def select(
    wf: WalkForward, candidates: Sequence[Candidate]
) -> tuple[Candidate, list[dict[str, Any]]]:
    """The candidate whose worst PR-AUC gain over the baseline (overall, per product) is largest."""
    summary = wf.summary()
    table = [
        {
            "candidate": c.name,
            "description": c.description,
            "pr_auc": summary["models"][c.name]["pr_auc"],
            "pr_auc_gain": pr_auc_gains(summary, c.name),
            "selection_score": selection_score(summary, c.name),
        }
        for c in candidates
    ]
    best = max(range(len(candidates)), key=lambda i: table[i]["selection_score"])
    return candidates[best], table


def train(
    paths: Sequence[Path],
    out_dir: Path,
    config: TrainConfig,
    progress: Callable[[str], None] | None = None,
) -> dict[VariantName, TrainedVariant]:
    """Write ``out_dir/<variant>/model.onnx`` and its model card, baseline and ML."""
    from volatility_training.cards import write_card

    step = progress or (lambda _msg: None)
    ds = build_dataset(paths, on_file=lambda p: step(f"read {p.name}"))
    spec = config.spec
    wf = walk_forward(
        ds,
        spec,
        {c.name: _fitter(c, config.seed) for c in config.candidates},
        config.n_folds,
        on_step=step,
    )
    chosen, table = select(wf, config.candidates)
    wf.scores[ML], wf.thresholds[ML] = wf.scores[chosen.name], wf.thresholds[chosen.name]

    # Final models: every labelled row is training data; label thresholds fitted on them.
    forward = forward_volatility(ds, spec.horizon)
    label_limits = fit_label_thresholds(ds.products, forward, spec.quantile)
    labels = apply_labels(ds.products, forward, label_limits)
    keep = ~np.isnan(labels)
    x, y = ds.features[keep], labels[keep]
    rule = BaselineRule.fit(x)
    ml_model = fit(chosen, x, y, config.seed)
    step(f"fit final {chosen.name}")

    files = training_files(ds)
    common_extra: dict[str, Any] = {
        "training_files": [{"file": f["file"], "sha256": f["sha256"]} for f in files],
        "time_range": {
            "start": iso_utc(float(ds.times.min())),
            "end": iso_utc(float(ds.times.max())),
        },
        "training_rows": int(keep.sum()),
        "seed": config.seed,
        "walk_forward_folds": len(wf.fold_info),
    }
    predictors: dict[VariantName, tuple[Predict, str, dict[str, Any]]] = {
        "baseline": (
            rule.predict_proba,
            f"sigmoid((ln({BASELINE_FEATURE} + eps) - mu) / sigma)",
            {"mu": rule.mu, "sigma": rule.sigma},
        ),
        "ml": (ml_model.predict_proba, chosen.description, {"candidate": chosen.name}),
    }
    digest_base = hashlib.sha256(
        json.dumps(
            [common_extra, spec.horizon, spec.quantile, FEATURE_SPEC_VERSION, list(FEATURE_NAMES)],
            sort_keys=True,
        ).encode()
    ).hexdigest()
    stamp = datetime.fromtimestamp(float(ds.times.max()), tz=UTC).strftime("%Y%m%d")
    result: dict[VariantName, TrainedVariant] = {}
    for variant, (predict, estimator, params) in predictors.items():
        operating = best_f1_threshold(y, predict(x))
        version_hash = hashlib.sha256(f"{digest_base}/{variant}/{estimator}".encode()).hexdigest()
        contract = ModelContract(
            variant=variant,
            version=f"{stamp}-{version_hash[:10]}",
            feature_names=FEATURE_NAMES,
            feature_spec_version=FEATURE_SPEC_VERSION,
            threshold=operating,
            horizon_seconds=float(spec.horizon),
            label_quantile=spec.quantile,
            label_thresholds=label_limits,
            extra={**common_extra, "estimator": estimator, "parameters": params},
        )
        metadata = contract.to_metadata()
        if variant == BASELINE:
            onnx_model = rule.to_onnx(metadata)
        else:
            onnx_model = fitted_to_onnx(ml_model, metadata)
        data = onnx_model.SerializeToString()
        gap = assert_parity(data, predict, ds.features)
        target = out_dir / variant
        target.mkdir(parents=True, exist_ok=True)
        (target / MODEL_FILE).write_bytes(data)
        result[variant] = TrainedVariant(variant, target / MODEL_FILE, contract, gap)
        write_card(target, contract, files, wf, table, gap, prevalence=float(y.mean()))
        step(f"export {variant}")
    return result
