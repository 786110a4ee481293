"""Live model quality and drift of a scoring service, exported as Prometheus gauges.

The consumer (and `volatility up`) scores every vector with the serving variant and, as a shadow,
the other one. `ModelMonitor` feeds the scored vectors to the plain-code parts
(`scoring.live` labels each prediction once its horizon has passed and keeps rolling figures;
`scoring.drift` compares recent vectors with the training distribution) and publishes their
figures at most every ``export_every`` seconds (wall clock: publishing gauges changes no
output, and products whose event clocks differ widely all stay fresh), labelled
``model_variant``, ``product`` and ``role`` (active or shadow). Figures cover the last
``window`` labelled predictions (one hour of seconds by default) and drift the last ``window``
vectors, per product.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from volatility import metrics
from volatility.features.spec import FEATURE_NAMES
from volatility.names import ROLE_ACTIVE, ROLE_SHADOW
from volatility.scoring.contract import ModelContract
from volatility.scoring.drift import DriftMonitor, references_of
from volatility.scoring.live import DEFAULT_WINDOW, Figures, LiveLabeller, LiveQuality
from volatility.scoring.target import LabelSpec

ACTIVE, SHADOW = ROLE_ACTIVE, ROLE_SHADOW


@dataclass(frozen=True)
class QualityRow:
    variant: str
    role: str
    product: str
    figures: Figures


class ModelMonitor:
    def __init__(
        self,
        active: ModelContract,
        shadow: ModelContract | None = None,
        *,
        export_every: float = 10.0,
        max_products: int = 64,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        spec = LabelSpec(
            horizon=int(active.horizon_seconds),
            quantile=active.label_quantile,
            regime_seconds=int(active.label_regime_seconds),
        )
        self.roles: dict[str, str] = {active.variant: ACTIVE}
        thresholds: dict[str, float] = {active.variant: active.threshold}
        if shadow is not None:
            self.roles[shadow.variant] = SHADOW
            thresholds[shadow.variant] = shadow.threshold
        self.active = active.variant
        self.labeller = LiveLabeller(spec, max_products=max_products)
        self.quality = LiveQuality(thresholds, window=window)
        self.drift = DriftMonitor(references_of(active.training_distribution), window=window)
        self._rv = FEATURE_NAMES.index(spec.feature)
        self._export_every = export_every
        self._exported_at = -math.inf
        # The scoring thread feeds it; a view or an exporter reads it from another thread.
        self._lock = threading.Lock()

    def observe(
        self,
        product_ids: Sequence[str],
        event_times: Sequence[float],
        matrix: np.ndarray,
        scores: Mapping[str, Sequence[float]],
    ) -> None:
        """A scored batch: rows in stream order, ``scores`` per variant, aligned with the rows."""
        variants = list(scores)
        rv = matrix[:, self._rv].tolist()
        with self._lock:
            for i, (product, t) in enumerate(zip(product_ids, event_times, strict=True)):
                given = {v: scores[v][i] for v in variants}
                labelled = self.labeller.observe(product, t, rv[i], given)
                if labelled is not None:
                    self.quality.add(labelled)
            for product in set(product_ids):
                rows = [i for i, p in enumerate(product_ids) if p == product]
                self.drift.add_many(product, matrix[rows])
        now = time.monotonic()
        if now - self._exported_at >= self._export_every:
            self.export()
            self._exported_at = now

    def rows(self) -> list[QualityRow]:
        with self._lock:
            return self._rows()

    def _rows(self) -> list[QualityRow]:
        return [
            QualityRow(
                variant,
                self.roles.get(variant, SHADOW),
                product,
                self.quality.figures(variant, product),
            )
            for variant, product in self.quality.groups()
        ]

    def max_psi(self) -> dict[str, tuple[str, float]]:
        """Per product, the feature drifting most and its PSI."""
        out: dict[str, tuple[str, float]] = {}
        for product in self.drift.references:
            with self._lock:
                values = self.drift.psi(product)
            if values:
                k = int(np.argmax(values))
                out[product] = (FEATURE_NAMES[k], values[k])
        return out

    def export(self) -> None:
        gauges = (
            (metrics.LIVE_PR_AUC, "pr_auc"),
            (metrics.LIVE_PRECISION, "precision"),
            (metrics.LIVE_RECALL, "recall"),
            (metrics.LIVE_BRIER, "brier"),
            (metrics.LIVE_PREVALENCE, "prevalence"),
            (metrics.LIVE_LABELLED, "labelled"),
        )
        for row in self.rows():
            for gauge, name in gauges:
                gauge.labels(row.variant, row.product, row.role).set(getattr(row.figures, name))
        for product, reference in self.drift.references.items():
            with self._lock:
                values = self.drift.psi(product)
            for feature, value in zip(FEATURE_NAMES, values, strict=False):
                metrics.FEATURE_PSI.labels(feature, product, self.active).set(value)
            if values:  # beside each PSI series, its bound (none from an older model)
                bound = metrics.FEATURE_PSI_TRAINING_MAX
                for feature, psi_max in zip(FEATURE_NAMES, reference.window_psi_max, strict=False):
                    bound.labels(feature, product, self.active).set(psi_max)
