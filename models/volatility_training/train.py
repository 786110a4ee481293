"""Training: nested session-grouped cross-validation, final fits, ONNX export, metadata and cards.

The figures reported come from `evaluate.cross_validate` (sessions never seen, selection and
thresholds chosen inside). The shipped models are then built by the same procedure on every
session: leave-one-session-out over all of them chooses the ML candidate and each variant's
operating threshold out of fold, and the chosen models are fitted on every labelled row.
"""

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
from volatility.scoring.drift import reference_from_features
from volatility_training.baseline import BASELINE_FEATURE, EPS, BaselineRule
from volatility_training.candidates import CANDIDATES, Candidate, fit
from volatility_training.dataset import Dataset, build_dataset, file_sha256, iso_utc
from volatility_training.evaluate import (
    BASELINE,
    ML,
    Predict,
    cross_validate,
    fitters,
    ml_beats_baseline,
    select,
)
from volatility_training.export import assert_parity, fitted_to_onnx
from volatility_training.labels import LabelSpec, label_dataset


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    spec: LabelSpec = field(default_factory=LabelSpec)
    candidates: tuple[Candidate, ...] = CANDIDATES


@dataclass(frozen=True)
class TrainedVariant:
    variant: VariantName
    path: Path
    contract: ModelContract
    parity_gap: float


def training_files(ds: Dataset, labels: np.ndarray) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for session, path in enumerate(ds.files):
        mine = ds.sessions == session
        times = ds.times[mine]
        out.append(
            {
                "file": path.name,
                "sha256": file_sha256(path),
                "rows": len(times),
                "labelled_rows": int(np.sum(~np.isnan(labels[mine]))),
                "start": iso_utc(float(times.min())) if len(times) else None,
                "end": iso_utc(float(times.max())) if len(times) else None,
            }
        )
    return out


def train(
    paths: Sequence[Path],
    out_dir: Path,
    config: TrainConfig,
    progress: Callable[[str], None] | None = None,
) -> dict[VariantName, TrainedVariant]:
    """Write ``out_dir/<variant>/model.onnx`` and its model card, baseline and ML."""
    from threadpoolctl import threadpool_limits

    # One thread: the many small fits are faster without thread start-up, and the figures are
    # the same on every machine.
    with threadpool_limits(1):
        return _train(paths, out_dir, config, progress or (lambda _msg: None))


def _train(
    paths: Sequence[Path], out_dir: Path, config: TrainConfig, step: Callable[[str], None]
) -> dict[VariantName, TrainedVariant]:
    from volatility_training.cards import write_card

    ds = build_dataset(paths, on_file=lambda p: step(f"read {p.name}"))
    spec = config.spec
    cv = cross_validate(ds, spec, config.candidates, config.seed, on_step=step)
    report = cv.report([BASELINE, ML])

    # The shipped models: the same choice, made out of fold over every session.
    labels = label_dataset(ds, spec)
    keep = np.flatnonzero(~np.isnan(labels))
    final = select(ds, labels, keep, spec, fitters(config.candidates, config.seed))
    chosen = next(c for c in config.candidates if c.name == final.chosen)
    x, y = ds.features[keep], labels[keep]
    rule = BaselineRule.fit(x)
    ml_model = fit(chosen, x, y, config.seed)
    step(f"fit final {chosen.name}")

    files = training_files(ds, labels)
    # What the stream should look like: every vector of each product, labelled or not, and how
    # far an hour of one session already strays from it.
    distribution = {
        str(p): reference_from_features(
            ds.features[ds.products == p], sessions=ds.sessions[ds.products == p]
        ).to_json()
        for p in sorted(set(ds.products.tolist()))
    }
    setup = {
        "method": (
            "nested leave-one-session-out: the outer loop tests each session on models fitted "
            "on the others (rows within the horizon of the test session purged); inside it, "
            "leave-one-session-out over the training sessions chooses the ML candidate "
            "(pooled PR-AUC) and each model's operating threshold (best F1)"
        ),
        "horizon_seconds": spec.horizon,
        "quantile": spec.quantile,
        "regime_seconds": spec.regime_seconds,
        "seed": config.seed,
        "candidates": [c.name for c in config.candidates],
    }
    common_extra: dict[str, Any] = {
        "training_files": [{"file": f["file"], "sha256": f["sha256"]} for f in files],
        "time_range": {
            "start": iso_utc(float(ds.times.min())),
            "end": iso_utc(float(ds.times.max())),
        },
        "training_rows": len(keep),
        "seed": config.seed,
        "recommended_variant": ML if ml_beats_baseline(report) else BASELINE,
    }
    predictors: dict[VariantName, tuple[Predict, str, dict[str, Any]]] = {
        "baseline": (
            rule.predict_proba,
            f"sigmoid((ln({BASELINE_FEATURE} + {EPS:g}) - mu) / sigma)",
            {"mu": rule.mu, "sigma": rule.sigma},
        ),
        "ml": (ml_model.predict_proba, chosen.description, {"candidate": chosen.name}),
    }
    digest_base = hashlib.sha256(
        json.dumps(
            [common_extra, setup, FEATURE_SPEC_VERSION, list(FEATURE_NAMES)], sort_keys=True
        ).encode()
    ).hexdigest()
    stamp = datetime.fromtimestamp(float(ds.times.max()), tz=UTC).strftime("%Y%m%d")
    operating = {"baseline": final.thresholds[BASELINE], "ml": final.thresholds[chosen.name]}
    result: dict[VariantName, TrainedVariant] = {}
    for variant, (predict, estimator, params) in predictors.items():
        version_hash = hashlib.sha256(f"{digest_base}/{variant}/{estimator}".encode()).hexdigest()
        contract = ModelContract(
            variant=variant,
            version=f"{stamp}-{version_hash[:10]}",
            feature_names=FEATURE_NAMES,
            feature_spec_version=FEATURE_SPEC_VERSION,
            threshold=operating[variant],
            horizon_seconds=float(spec.horizon),
            label_quantile=spec.quantile,
            label_regime_seconds=float(spec.regime_seconds),
            extra={**common_extra, "estimator": estimator, "parameters": params},
            training_distribution=distribution,
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
        write_card(
            target,
            contract,
            files,
            cv,
            report,
            setup,
            final_selection={"chosen": final.chosen, "pr_auc": final.pr_auc, "rows": final.rows},
            parity_gap=gap,
            prevalence=float(y.mean()),
            baseline_at_one=rule.score_of(1.0),
            baseline_threshold=operating["baseline"],
        )
        step(f"export {variant}")
    return result
