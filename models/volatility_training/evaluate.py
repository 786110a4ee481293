"""Session-grouped, nested cross-validation of the baseline and the ML candidates, and the scoring
of shipped models on recordings.

Outer loop: leave one session out (`split.session_folds`). Inside each outer fold, on its training
sessions only, an inner leave-one-session-out gives every model out-of-fold scores; they choose
the ML candidate (highest pooled PR-AUC) and every model's operating threshold (best F1). The
outer test session is then scored by models fitted on all its training sessions, flagged at the
thresholds chosen inside. So the "ml" figures are those of the whole procedure, selection
included, on sessions it never saw; nothing reported was tuned on the rows it is reported on.

Reports give pooled figures, per product, per session and product (within-session ROC-AUC and
PR-AUC, and their means over the groups that hold both classes), and the session oracle: a score
that knows only each group's spike rate, the bound a regime classifier reaches without telling
one second from the next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from volatility.scoring.quality import average_precision, best_f1_threshold, roc_auc, score
from volatility_training.baseline import BaselineRule
from volatility_training.candidates import Candidate, candidate, fit
from volatility_training.dataset import Dataset
from volatility_training.labels import LabelSpec, label_dataset
from volatility_training.leakage import check_labels, check_split
from volatility_training.split import Fold, session_folds

BASELINE = "baseline"
ML = "ml"
Summary = dict[str, Any]
Predict = Callable[[np.ndarray], np.ndarray]
Fitter = Callable[[np.ndarray, np.ndarray], Predict]
Step = Callable[[str], None]


def _fit_baseline(features: np.ndarray, labels: np.ndarray) -> Predict:
    return BaselineRule.fit(features).predict_proba


def fitters(candidates: Sequence[Candidate], seed: int) -> dict[str, Fitter]:
    """The baseline and every candidate, as ``fit(features, labels) -> predict``."""
    out: dict[str, Fitter] = {BASELINE: _fit_baseline}
    for cand in candidates:

        def fit_one(x: np.ndarray, y: np.ndarray, cand: Candidate = cand) -> Predict:
            return fit(cand, x, y, seed).predict_proba

        out[cand.name] = fit_one
    return out


@dataclass(frozen=True)
class Selection:
    """What the inner cross-validation on some sessions decided."""

    chosen: str  # the ML candidate with the highest out-of-fold PR-AUC
    pr_auc: dict[str, float]  # every model's out-of-fold PR-AUC
    thresholds: dict[str, float]  # every model's operating threshold (best F1 out of fold)
    rows: int  # out-of-fold rows behind those figures


def _check_fold(ds: Dataset, fold: Fold, spec: LabelSpec) -> None:
    """The split guard on a fold, from the rows' own times and sessions."""
    tr, te = fold.train, fold.test
    check_split(ds.times[tr], ds.sessions[tr], ds.times[te], ds.sessions[te], spec.horizon)


def select(
    ds: Dataset,
    labels: np.ndarray,
    rows: np.ndarray,
    spec: LabelSpec,
    models: dict[str, Fitter],
) -> Selection:
    """Leave-one-session-out over the sessions of ``rows``: choose the candidate and thresholds."""
    oof = {name: np.full(len(ds), np.nan) for name in models}
    covered = np.zeros(len(ds), dtype=bool)
    for fold in session_folds(ds.sessions, ds.times, gap=spec.horizon, rows=rows):
        _check_fold(ds, fold, spec)
        y_train = labels[fold.train]
        if not y_train.any() or y_train.all():
            continue
        for name, fitter in models.items():
            oof[name][fold.test] = fitter(ds.features[fold.train], y_train)(ds.features[fold.test])
        covered[fold.test] = True
    if not covered.any():
        raise ValueError("no inner fold has training sessions with both spikes and calm rows")
    y = labels[covered]
    pr_auc = {name: average_precision(y, p[covered]) for name, p in oof.items()}
    thresholds = {name: best_f1_threshold(y, p[covered]) for name, p in oof.items()}
    ml = [n for n in models if n != BASELINE]
    chosen = max(ml, key=lambda n: (np.nan_to_num(pr_auc[n], nan=-1.0), -ml.index(n)))
    return Selection(chosen, pr_auc, thresholds, int(covered.sum()))


@dataclass
class CrossValidation:
    """Out-of-fold scores of every model on every labelled row of every tested session."""

    labels: np.ndarray
    products: np.ndarray
    sessions: np.ndarray
    session_names: tuple[str, ...]
    scores: dict[str, np.ndarray]
    thresholds: dict[str, np.ndarray]  # per row: the threshold chosen inside the row's fold
    folds: list[dict[str, Any]] = field(default_factory=list)

    def report(self, models: Sequence[str] | None = None) -> Summary:
        names = list(self.scores) if models is None else list(models)
        return summarise(
            self.labels,
            self.products,
            np.array([self.session_names[s] for s in self.sessions.tolist()], dtype=str),
            {n: self.scores[n] for n in names},
            {n: self.thresholds[n] for n in names},
        )


def cross_validate(
    ds: Dataset,
    spec: LabelSpec,
    candidates: Sequence[Candidate],
    seed: int,
    on_step: Step | None = None,
) -> CrossValidation:
    """The nested, session-grouped cross-validation described in the module docstring."""
    step = on_step or (lambda _msg: None)
    labels = label_dataset(ds, spec)
    check_labels(ds, labels, spec)
    labelled = np.flatnonzero(~np.isnan(labels))
    models = fitters(candidates, seed)
    names = [*models, ML]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("rows", *names)}
    limits: dict[str, list[np.ndarray]] = {n: [] for n in names}
    folds: list[dict[str, Any]] = []
    for fold in session_folds(ds.sessions, ds.times, gap=spec.horizon, rows=labelled):
        name = ds.files[fold.session].name if ds.files else str(fold.session)
        _check_fold(ds, fold, spec)
        y_train = labels[fold.train]
        if not y_train.any() or y_train.all():
            step(f"skip {name}")
            continue
        try:
            chosen = select(ds, labels, fold.train, spec, models)
        except ValueError:
            step(f"skip {name}")
            continue
        x_test = ds.features[fold.test]
        for model, fitter in models.items():
            parts[model].append(fitter(ds.features[fold.train], y_train)(x_test))
            limits[model].append(np.full(len(fold.test), chosen.thresholds[model]))
        parts[ML].append(parts[chosen.chosen][-1])
        limits[ML].append(limits[chosen.chosen][-1])
        parts["rows"].append(fold.test)
        folds.append(
            {
                "session": name,
                "test_rows": len(fold.test),
                "train_rows": len(fold.train),
                "train_sessions": len(np.unique(ds.sessions[fold.train])),
                "chosen": chosen.chosen,
                "inner_pr_auc": chosen.pr_auc,
                "thresholds": chosen.thresholds,
            }
        )
        step(f"test {name}")
    if not folds:
        raise ValueError("no session could be tested: too few labelled sessions with spikes")
    rows = np.concatenate(parts["rows"])
    return CrossValidation(
        labels=labels[rows],
        products=ds.products[rows],
        sessions=ds.sessions[rows],
        session_names=tuple(p.name for p in ds.files)
        or tuple(str(s) for s in range(int(ds.sessions.max()) + 1)),
        scores={n: np.concatenate(parts[n]) for n in names},
        thresholds={n: np.concatenate(limits[n]) for n in names},
        folds=folds,
    )


def summarise(
    labels: np.ndarray,
    products: np.ndarray,
    sessions: np.ndarray,
    scores: dict[str, np.ndarray],
    thresholds: dict[str, float | np.ndarray],
) -> Summary:
    """Pooled, per product, per session and product, within-session means, session oracle."""

    def block(mask: np.ndarray) -> Summary:
        y = labels[mask]
        return {
            "rows": int(mask.sum()),
            "prevalence": float(y.mean()) if len(y) else float("nan"),
            "models": {
                name: score(y, p[mask], _at(thresholds[name], mask)) for name, p in scores.items()
            },
        }

    groups = np.array([f"{s} {p}" for s, p in zip(sessions, products, strict=True)], dtype=str)
    out = block(np.ones(len(labels), dtype=bool))
    out["per_product"] = {str(p): block(products == p) for p in sorted(set(products.tolist()))}
    out["per_session"] = {str(g): block(groups == g) for g in sorted(set(groups.tolist()))}
    out["within_session"] = {
        "all": _within(out["per_session"], list(out["per_session"])),
        **{
            p: _within(out["per_session"], [g for g in out["per_session"] if g.endswith(" " + p)])
            for p in out["per_product"]
        },
    }
    oracle = np.zeros(len(labels))
    for g in set(groups.tolist()):
        oracle[groups == g] = labels[groups == g].mean()
    out["session_oracle"] = {
        "pr_auc": average_precision(labels, oracle),
        "roc_auc": roc_auc(labels, oracle),
    }
    return out


def _within(per_session: Summary, groups: list[str]) -> Summary:
    """Means over the session-product groups that hold both classes (the others rank nothing)."""
    usable = [
        g for g in groups if 0.0 < per_session[g]["prevalence"] < 1.0 and per_session[g]["rows"] > 0
    ]
    out: Summary = {"groups": len(usable)}
    if not usable:
        return out

    def mean(name: str, metric: str, minus_prevalence: bool = False) -> float:
        values = [
            per_session[g]["models"][name][metric]
            - (per_session[g]["prevalence"] if minus_prevalence else 0.0)
            for g in usable
        ]
        return float(np.mean(values))

    out["models"] = {
        name: {
            "roc_auc_mean": mean(name, "roc_auc"),
            "pr_auc_mean": mean(name, "pr_auc"),
            "pr_auc_lift_mean": mean(name, "pr_auc", minus_prevalence=True),
        }
        for name in per_session[usable[0]]["models"]
    }
    return out


def _at(threshold: float | np.ndarray, mask: np.ndarray) -> float | np.ndarray:
    return threshold[mask] if isinstance(threshold, np.ndarray) else threshold


def ml_beats_baseline(report: Summary) -> bool:
    """The ML procedure is preferred only if it ranks better pooled *and* within sessions."""
    pooled = report["models"]
    within = report["within_session"]["all"].get("models", {})
    if ML not in pooled or ML not in within:
        return False
    return bool(
        pooled[ML]["pr_auc"] > pooled[BASELINE]["pr_auc"]
        and within[ML]["pr_auc_lift_mean"] > within[BASELINE]["pr_auc_lift_mean"]
    )


def label_spec_of(contract: Any) -> LabelSpec:
    """The label definition a model was trained with, from its contract."""
    return LabelSpec(
        horizon=int(contract.horizon_seconds),
        quantile=float(contract.label_quantile),
        regime_seconds=int(contract.label_regime_seconds),
    )


def evaluate_models(paths: Sequence[Path], models_dir: Path) -> Summary:
    """Score recordings with the shipped ONNX models exactly as served, labelled as trained."""
    from volatility.names import VARIANTS
    from volatility.scoring.model import Model
    from volatility_training.dataset import build_dataset

    loaded = {v: Model.load(models_dir, v) for v in VARIANTS}
    specs = {v: label_spec_of(m.contract) for v, m in loaded.items()}
    spec = specs[VARIANTS[0]]
    for variant, other in specs.items():
        if other != spec:
            raise ValueError(f"{variant} model was labelled differently from {VARIANTS[0]}")
    ds = build_dataset(paths)
    labels = label_dataset(ds, spec)
    keep = ~np.isnan(labels)
    x32 = ds.features[keep].astype(np.float32)
    scores: dict[str, np.ndarray] = {
        v: np.asarray(m.score(x32), dtype=np.float64) for v, m in loaded.items()
    }
    thresholds: dict[str, float | np.ndarray] = {v: m.contract.threshold for v, m in loaded.items()}
    names = np.array([ds.files[s].name for s in ds.sessions[keep].tolist()], dtype=str)
    return summarise(labels[keep], ds.products[keep], names, scores, thresholds)


def cross_validate_as_trained(paths: Sequence[Path], models_dir: Path) -> Summary:
    """Re-run the cross-validation that a shipped model card reports, on ``paths``."""
    import json

    from threadpoolctl import threadpool_limits

    from volatility_training.dataset import build_dataset

    card = json.loads((models_dir / ML / "model_card.json").read_text())
    setup = card["cross_validation"]["setup"]
    spec = LabelSpec(
        horizon=int(setup["horizon_seconds"]),
        quantile=float(setup["quantile"]),
        regime_seconds=int(setup["regime_seconds"]),
    )
    candidates = [candidate(name) for name in setup["candidates"]]
    with threadpool_limits(1):
        cv = cross_validate(build_dataset(paths), spec, candidates, int(setup["seed"]))
    return cv.report([BASELINE, ML])
