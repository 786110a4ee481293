"""Spike labels: is the realized volatility of the next ``horizon`` seconds in the top tail?

Window convention (see `volatility.features.engine`): the vector at whole second ``s`` describes
the ticks with event time in ``[s - W, s)``, and a tick's return is the log of its mid over the
previous tick's mid. Hence the engine's ``rv_{h}s`` at ``t + h`` is the realized volatility of the
mid log returns of the ticks with event time in ``[t, t + h)``, in bps per 60 s: exactly the ticks
that the vector at ``t`` has not seen (its windows end just before ``t``). That is the forward
quantity a row at ``t`` is labelled with, read from the row at ``t + h`` of the same uninterrupted
history; a row without one (end of a session, a silence that restarted the product) has no label.

A row of product ``p`` is a spike when its forward volatility is strictly above the
``quantile``-th quantile of the forward volatility of ``p``'s labelled training rows. The
thresholds are fitted once, on training rows only, and stored with the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from volatility.features.spec import WINDOWS
from volatility_training.dataset import Dataset

DEFAULT_HORIZON = 60
DEFAULT_QUANTILE = 0.9


@dataclass(frozen=True)
class LabelSpec:
    horizon: int = DEFAULT_HORIZON
    quantile: float = DEFAULT_QUANTILE

    def __post_init__(self) -> None:
        if self.horizon not in WINDOWS:
            raise ValueError(f"horizon must be one of the engine windows {WINDOWS}: {self.horizon}")
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")

    @property
    def feature(self) -> str:
        """The engine feature that, read at t + horizon, is the forward quantity at t."""
        return f"rv_{self.horizon}s"


def row_at_offset(ds: Dataset, offset: int) -> np.ndarray:
    """Index of the row ``offset`` seconds later in the same history, or -1 where there is none."""
    histories, times = ds.histories.tolist(), ds.times.tolist()
    lookup = {(h, t): i for i, (h, t) in enumerate(zip(histories, times, strict=True))}
    return np.array(
        [lookup.get((h, t + offset), -1) for h, t in zip(histories, times, strict=True)],
        dtype=np.int64,
    )


def forward_volatility(ds: Dataset, horizon: int = DEFAULT_HORIZON) -> np.ndarray:
    """Realized volatility over ``[t, t + horizon)`` for each row; NaN where incomplete."""
    spec = LabelSpec(horizon=horizon)
    later = row_at_offset(ds, horizon)
    out = np.full(len(ds), np.nan)
    ok = later >= 0
    out[ok] = ds.column(spec.feature)[later[ok]]
    return out


def fit_label_thresholds(
    products: np.ndarray, forward: np.ndarray, quantile: float = DEFAULT_QUANTILE
) -> dict[str, float]:
    """Per product, the ``quantile`` of the forward volatility of the (training) rows given."""
    out: dict[str, float] = {}
    for product in sorted(set(products.tolist())):
        values = forward[(products == product) & ~np.isnan(forward)]
        if len(values):
            out[product] = float(np.quantile(values, quantile))
    return out


def apply_labels(
    products: np.ndarray, forward: np.ndarray, thresholds: Mapping[str, float]
) -> np.ndarray:
    """1.0 (spike), 0.0 (calm) or NaN (no forward window, or a product without a threshold)."""
    limit = np.array([thresholds.get(p, np.nan) for p in products.tolist()], dtype=np.float64)
    labels = np.where(forward > limit, 1.0, 0.0)
    labels[np.isnan(forward) | np.isnan(limit)] = np.nan
    return labels
