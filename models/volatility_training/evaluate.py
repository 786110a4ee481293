"""Walk-forward evaluation of the baseline and the ML candidates, and scoring of shipped models.

Every model is reported beside the baseline, overall and per product. Overall figures pool the
out-of-fold predictions of every fold (each fold labelled with thresholds fitted on its own
training rows, each model flagging at the operating threshold it chose on those rows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from volatility_training.baseline import BaselineRule
from volatility_training.dataset import Dataset
from volatility_training.labels import (
    LabelSpec,
    apply_labels,
    fit_label_thresholds,
    forward_volatility,
)
from volatility_training.leakage import check_forward_target, check_split
from volatility_training.metrics import best_f1_threshold, score
from volatility_training.split import walk_forward_folds

BASELINE = "baseline"
Summary = dict[str, Any]


@dataclass
class WalkForward:
    """Out-of-fold predictions of every model, and the figures derived from them."""

    labels: np.ndarray
    products: np.ndarray
    times: np.ndarray
    folds: np.ndarray
    scores: dict[str, np.ndarray]
    thresholds: dict[str, np.ndarray]  # per row: the operating threshold of the row's fold
    fold_info: list[dict[str, Any]] = field(default_factory=list)

    def summary(self, models: Sequence[str] | None = None) -> Summary:
        names = list(self.scores) if models is None else list(models)
        return summarise(
            self.labels,
            self.products,
            {n: self.scores[n] for n in names},
            {n: self.thresholds[n] for n in names},
        )

    def per_fold(self, models: Sequence[str]) -> list[Summary]:
        out: list[Summary] = []
        for info in self.fold_info:
            mask = self.folds == info["fold"]
            s = summarise(
                self.labels[mask],
                self.products[mask],
                {n: self.scores[n][mask] for n in models},
                {n: self.thresholds[n][mask] for n in models},
            )
            out.append({**info, **s})
        return out


def summarise(
    labels: np.ndarray,
    products: np.ndarray,
    scores: dict[str, np.ndarray],
    thresholds: dict[str, float | np.ndarray],
) -> Summary:
    """{"rows", "prevalence", "models": {name: metrics}, "per_product": {p: same shape}}."""

    def block(mask: np.ndarray) -> Summary:
        y = labels[mask]
        return {
            "rows": int(mask.sum()),
            "prevalence": float(y.mean()) if len(y) else float("nan"),
            "models": {
                name: score(y, p[mask], _at(thresholds[name], mask)) for name, p in scores.items()
            },
        }

    everything = block(np.ones(len(labels), dtype=bool))
    everything["per_product"] = {
        str(p): block(products == p) for p in sorted(set(products.tolist()))
    }
    return everything


def _at(threshold: float | np.ndarray, mask: np.ndarray) -> float | np.ndarray:
    return threshold[mask] if isinstance(threshold, np.ndarray) else threshold


def walk_forward(
    ds: Dataset,
    spec: LabelSpec,
    models: dict[str, Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]],
    n_folds: int,
    on_step: Callable[[str], None] | None = None,
) -> WalkForward:
    """Fit the baseline and every model in ``models`` on each fold's past, score its future.

    ``models`` maps a name to ``fit(features, labels) -> predict``; the baseline is added.
    """
    forward = forward_volatility(ds, spec.horizon)
    check_forward_target(ds, forward, spec.horizon)
    fitters = {BASELINE: _fit_baseline, **models}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("labels", "products", "times", "folds")}
    scores: dict[str, list[np.ndarray]] = {n: [] for n in fitters}
    limits: dict[str, list[np.ndarray]] = {n: [] for n in fitters}
    info: list[dict[str, Any]] = []
    for fold in walk_forward_folds(ds.times, n_folds, gap=spec.horizon):
        train = fold.train[~np.isnan(forward[fold.train])]
        test = fold.test[~np.isnan(forward[fold.test])]
        check_split(ds.times[train], ds.times[test], spec.horizon)
        label_limits = fit_label_thresholds(ds.products[train], forward[train], spec.quantile)
        y_train = apply_labels(ds.products[train], forward[train], label_limits)
        y_test = apply_labels(ds.products[test], forward[test], label_limits)
        train, y_train = train[~np.isnan(y_train)], y_train[~np.isnan(y_train)]
        test, y_test = test[~np.isnan(y_test)], y_test[~np.isnan(y_test)]
        if not len(test) or not y_train.any() or y_train.all():
            continue
        for name, fitter in fitters.items():
            predict = fitter(ds.features[train], y_train)
            operating = best_f1_threshold(y_train, predict(ds.features[train]))
            scores[name].append(predict(ds.features[test]))
            limits[name].append(np.full(len(test), operating))
            if on_step is not None:
                on_step(f"fold {fold.number} {name}")
        parts["labels"].append(y_test)
        parts["products"].append(ds.products[test])
        parts["times"].append(ds.times[test])
        parts["folds"].append(np.full(len(test), fold.number))
        info.append(
            {
                "fold": fold.number,
                "train_rows": len(train),
                "train_until": float(ds.times[train].max()),
                "test_from": float(ds.times[test].min()),
                "test_until": float(ds.times[test].max()),
                "label_thresholds": label_limits,
            }
        )
    if not info:
        raise ValueError("no walk-forward fold has both training spikes and test rows")
    return WalkForward(
        labels=np.concatenate(parts["labels"]),
        products=np.concatenate(parts["products"]),
        times=np.concatenate(parts["times"]),
        folds=np.concatenate(parts["folds"]),
        scores={n: np.concatenate(v) for n, v in scores.items()},
        thresholds={n: np.concatenate(v) for n, v in limits.items()},
        fold_info=info,
    )


def _fit_baseline(features: np.ndarray, labels: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return BaselineRule.fit(features).predict_proba


def pr_auc_gains(summary: Summary, model: str) -> dict[str, float]:
    """PR-AUC of ``model`` minus the baseline's, overall and per product (NaN when undefined)."""

    def gain(block: Summary) -> float:
        m = block["models"]
        return float(m[model]["pr_auc"] - m[BASELINE]["pr_auc"])

    out = {"overall": gain(summary)}
    for product, block in summary["per_product"].items():
        out[product] = gain(block)
    return out


def selection_score(summary: Summary, model: str) -> float:
    """The smallest PR-AUC gain over the baseline, overall or on any product: higher is better."""
    gains = [g for g in pr_auc_gains(summary, model).values() if g == g]
    return min(gains) if gains else float("-inf")


def evaluate_models(paths: Sequence[Path], models_dir: Path) -> Summary:
    """Score recordings with the shipped ONNX models exactly as served, labelled as trained."""
    from volatility.names import VARIANTS
    from volatility.scoring.model import Model
    from volatility_training.dataset import build_dataset

    loaded = {v: Model.load(models_dir, v) for v in VARIANTS}
    contracts = {v: m.contract for v, m in loaded.items()}
    first = contracts[VARIANTS[0]]
    for variant, contract in contracts.items():
        if (contract.horizon_seconds, dict(contract.label_thresholds)) != (
            first.horizon_seconds,
            dict(first.label_thresholds),
        ):
            raise ValueError(f"{variant} model was labelled differently from {VARIANTS[0]}")
    horizon = int(first.horizon_seconds)
    ds = build_dataset(paths)
    forward = forward_volatility(ds, horizon)
    labels = apply_labels(ds.products, forward, first.label_thresholds)
    keep = ~np.isnan(labels)
    x32 = ds.features[keep].astype(np.float32)
    scores: dict[str, np.ndarray] = {
        v: np.asarray(m.score(x32), dtype=np.float64) for v, m in loaded.items()
    }
    thresholds: dict[str, float | np.ndarray] = {v: c.threshold for v, c in contracts.items()}
    return summarise(labels[keep], ds.products[keep], scores, thresholds)
