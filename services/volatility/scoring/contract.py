"""What a model artifact promises, read from (and written to) its ONNX metadata.

Every model, the baseline rule included, is an ONNX graph with one float input of shape
[n, len(feature_names)] and an output ``probabilities`` of shape [n, 2] whose second column is
the probability of a volatility spike. Its metadata carries the feature contract it was trained
on; services refuse a model whose contract differs from the running feature engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from volatility.features.spec import FEATURE_NAMES, FEATURE_SPEC_VERSION
from volatility.names import VARIANTS, VariantName

INPUT_NAME = "features"
PROBABILITIES = "probabilities"
MODEL_FILE = "model.onnx"

# Metadata keys.
META_FEATURE_NAMES = "feature_names"
META_FEATURE_SPEC = "feature_spec_version"
META_VARIANT = "variant"
META_VERSION = "model_version"
META_THRESHOLD = "threshold"
META_HORIZON = "horizon_seconds"
META_LABEL_QUANTILE = "label_quantile"
META_LABEL_REGIME = "label_regime_seconds"
META_EXTRA = "extra"
META_TRAINING_DISTRIBUTION = "training_distribution"


class ModelContractError(ValueError):
    """The model's metadata is missing, malformed or disagrees with the running feature engine."""


@dataclass(frozen=True)
class ModelContract:
    variant: VariantName
    version: str
    feature_names: tuple[str, ...]
    feature_spec_version: str
    threshold: float
    horizon_seconds: float
    # A row at t is a spike when the realized volatility of [t, t + horizon) exceeds the
    # label_quantile of the product's horizon-long volatility over the label_regime_seconds
    # up to t (its own recent regime, known at t).
    label_quantile: float
    label_regime_seconds: float
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Per product, the training rows' feature distribution (`volatility.scoring.drift`).
    training_distribution: Mapping[str, Any] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, str]:
        return {
            META_VARIANT: self.variant,
            META_VERSION: self.version,
            META_FEATURE_NAMES: json.dumps(list(self.feature_names)),
            META_FEATURE_SPEC: self.feature_spec_version,
            META_THRESHOLD: repr(self.threshold),
            META_HORIZON: repr(self.horizon_seconds),
            META_LABEL_QUANTILE: repr(self.label_quantile),
            META_LABEL_REGIME: repr(self.label_regime_seconds),
            META_EXTRA: json.dumps(dict(self.extra), sort_keys=True),
            META_TRAINING_DISTRIBUTION: json.dumps(dict(self.training_distribution)),
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], source: str = "model") -> ModelContract:
        missing = [
            k
            for k in (
                META_VARIANT,
                META_VERSION,
                META_FEATURE_NAMES,
                META_FEATURE_SPEC,
                META_THRESHOLD,
            )
            if k not in meta
        ]
        if missing:
            raise ModelContractError(f"{source}: metadata lacks {', '.join(missing)}")
        variant = meta[META_VARIANT]
        if variant not in VARIANTS:
            raise ModelContractError(f"{source}: unknown variant {variant!r} (expected {VARIANTS})")
        try:
            names = json.loads(meta[META_FEATURE_NAMES])
            extra = json.loads(meta.get(META_EXTRA, "{}"))
            distribution = json.loads(meta.get(META_TRAINING_DISTRIBUTION, "{}"))
            return cls(
                variant=variant,
                version=meta[META_VERSION],
                feature_names=tuple(str(n) for n in names),
                feature_spec_version=meta[META_FEATURE_SPEC],
                threshold=float(meta[META_THRESHOLD]),
                horizon_seconds=float(meta.get(META_HORIZON, "nan")),
                label_quantile=float(meta.get(META_LABEL_QUANTILE, "nan")),
                label_regime_seconds=float(meta.get(META_LABEL_REGIME, "nan")),
                extra=extra,
                training_distribution=distribution,
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise ModelContractError(f"{source}: malformed metadata: {exc}") from exc

    def check_features(
        self,
        names: Sequence[str] = FEATURE_NAMES,
        spec_version: str = FEATURE_SPEC_VERSION,
        source: str = "model",
    ) -> None:
        """Raise unless the model was trained on exactly these features, in this order."""
        problems: list[str] = []
        if self.feature_spec_version != spec_version:
            problems.append(
                f"feature spec version {self.feature_spec_version!r} != engine's {spec_version!r}"
            )
        if tuple(names) != self.feature_names:
            only_model = [n for n in self.feature_names if n not in names]
            only_engine = [n for n in names if n not in self.feature_names]
            if only_model:
                problems.append(f"model-only features: {', '.join(only_model)}")
            if only_engine:
                problems.append(f"engine-only features: {', '.join(only_engine)}")
            if not only_model and not only_engine:
                problems.append("same features in a different order")
        if problems:
            raise ModelContractError(
                f"{source} does not match the feature engine: " + "; ".join(problems)
            )


def model_path(model_dir: Path, variant: VariantName) -> Path:
    return model_dir / variant / MODEL_FILE
