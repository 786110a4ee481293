"""Live model quality: each prediction joined with its realized label once its horizon has passed.

The stream of feature vectors already carries what the label needs (`volatility.scoring.target`):
a product's vector at second ``s`` holds ``rv_{h}s`` of ``[s - h, s)``, the forward volatility of
the prediction made at ``s - h``, and the last ``R`` of those values set the regime level at a
prediction's time. `LiveLabeller` keeps that per product, in event time, and returns each
prediction with its label exactly when the vector ``h`` seconds later arrives: on a replayed
recording it labels the same rows, with the same labels, as offline evaluation.

`LiveQuality` keeps the last ``window`` labelled predictions per (variant, product) and computes
the figures offline evaluation reports. Plain code: services only feed it and export gauges.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from volatility.scoring.quality import average_precision
from volatility.scoring.target import LabelSpec

#: Labelled predictions per variant and product behind the live figures (one hour of seconds).
DEFAULT_WINDOW = 3600


@dataclass(frozen=True, slots=True)
class Labelled:
    product: str
    time: float  # event time of the prediction
    label: float  # 1.0 spike, 0.0 calm
    scores: Mapping[str, float]  # variant -> spike probability given at ``time``


@dataclass
class _Product:
    last: float | None = None
    rv: deque[float] = field(default_factory=deque)  # arrival order, for eviction
    ordered: list[float] = field(default_factory=list)  # the same values, sorted
    pending: deque[tuple[float, float, Mapping[str, float]]] = field(default_factory=deque)

    def clear(self) -> None:
        self.rv.clear()
        self.ordered.clear()
        self.pending.clear()


def sorted_quantile(ordered: list[float], q: float) -> float:
    """``numpy.quantile(values, q)`` (linear method) of values already sorted, to the last bit."""
    position = q * (len(ordered) - 1)
    k = math.floor(position)
    t = position - k
    a = ordered[k]
    b = ordered[min(k + 1, len(ordered) - 1)]
    # numpy's _lerp: the form it uses depends on which end is nearer.
    return b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t


class LiveLabeller:
    """Per product, in event time: predictions in, labelled predictions out ``horizon`` later."""

    def __init__(self, spec: LabelSpec, max_products: int = 64) -> None:
        self.spec = spec
        self._max_products = max_products
        self._products: dict[str, _Product] = {}

    def observe(
        self, product: str, time: float, rv: float, scores: Mapping[str, float]
    ) -> Labelled | None:
        """Record the vector at ``time`` (its ``rv_{h}s`` and the scores given for it); return
        the prediction of ``time - horizon`` with its label, if there is one."""
        state = self._products.get(product)
        if state is None:
            if len(self._products) >= self._max_products:
                return None  # bounded: products beyond the configured set are not tracked
            state = self._products[product] = _Product()
        if state.last is not None:
            if time <= state.last:
                return None  # a copy or a late vector: the second was already recorded
            if time != state.last + 1.0:
                # A hole: the engine restarted the product's history; so does the labeller.
                state.clear()
        state.last = time
        state.rv.append(rv)
        bisect.insort(state.ordered, rv)
        if len(state.rv) > self.spec.regime_seconds:
            gone = state.rv.popleft()
            del state.ordered[bisect.bisect_left(state.ordered, gone)]
        if len(state.rv) == self.spec.regime_seconds:
            level = sorted_quantile(state.ordered, self.spec.quantile)
            state.pending.append((time, level, scores))
        if state.pending and state.pending[0][0] == time - self.spec.horizon:
            when, level, given = state.pending.popleft()
            return Labelled(product, when, 1.0 if rv > level else 0.0, given)
        return None

    def pending(self) -> int:
        return sum(len(p.pending) for p in self._products.values())


@dataclass(frozen=True)
class Figures:
    labelled: int
    prevalence: float
    pr_auc: float
    precision: float
    recall: float
    brier: float


class LiveQuality:
    """Rolling figures per (variant, product) over the last ``window`` labelled predictions."""

    def __init__(self, thresholds: Mapping[str, float], window: int = DEFAULT_WINDOW) -> None:
        self.thresholds = dict(thresholds)
        self.window = window
        self._pairs: dict[tuple[str, str], deque[tuple[float, float]]] = {}

    def add(self, item: Labelled) -> None:
        for variant, score in item.scores.items():
            pairs = self._pairs.setdefault((variant, item.product), deque(maxlen=self.window))
            pairs.append((score, item.label))

    def groups(self) -> list[tuple[str, str]]:
        return sorted(self._pairs)

    def figures(self, variant: str, product: str) -> Figures:
        pairs = self._pairs.get((variant, product))
        if not pairs:
            nan = math.nan
            return Figures(0, nan, nan, nan, nan, nan)
        p = np.fromiter((s for s, _ in pairs), float, len(pairs))
        y = np.fromiter((label for _, label in pairs), float, len(pairs))
        flagged = p >= self.thresholds.get(variant, 0.5)
        hits = float(np.sum(flagged & (y == 1.0)))
        return Figures(
            labelled=len(pairs),
            prevalence=float(y.mean()),
            pr_auc=average_precision(y, p),
            precision=hits / float(flagged.sum()) if flagged.any() else math.nan,
            recall=hits / float(y.sum()) if y.any() else math.nan,
            brier=float(np.mean((p - y) ** 2)),
        )
