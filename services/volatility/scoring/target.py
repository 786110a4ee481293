"""What the models predict: the spike label, defined once for training, evaluation and live data.

A row (a product's feature vector) at whole second ``t`` is a *spike* when the realized volatility
of the next ``horizon`` seconds exceeds the ``quantile`` of the product's own ``horizon``-long
realized volatility over the ``regime_seconds`` up to ``t``: its recent regime, known at ``t``.
Both quantities are the engine's ``rv_{horizon}s`` feature: read at ``t + horizon`` it covers
``[t, t + horizon)`` (the forward volatility); read at ``t - R + 1 .. t`` it gives the regime
(every window ending by ``t``). Nothing is fitted, so a calm product and a busy one each have
spikes of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from volatility.features.spec import WINDOWS
from volatility.scoring.target_defaults import (
    DEFAULT_HORIZON,
    DEFAULT_QUANTILE,
    DEFAULT_REGIME_SECONDS,
)

MIN_REGIME_SECONDS = 600


@dataclass(frozen=True)
class LabelSpec:
    horizon: int = DEFAULT_HORIZON
    quantile: float = DEFAULT_QUANTILE
    regime_seconds: int = DEFAULT_REGIME_SECONDS

    def __post_init__(self) -> None:
        if self.horizon not in WINDOWS:
            raise ValueError(f"horizon must be one of the engine windows {WINDOWS}: {self.horizon}")
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")
        if self.regime_seconds < max(MIN_REGIME_SECONDS, 2 * self.horizon):
            raise ValueError(
                f"regime_seconds must be at least {max(MIN_REGIME_SECONDS, 2 * self.horizon)} "
                f"(10 minutes and two horizons), got {self.regime_seconds}"
            )

    @property
    def feature(self) -> str:
        """The engine feature that, read at t + horizon, is the forward quantity at t."""
        return f"rv_{self.horizon}s"


def regime_levels(rv: np.ndarray, spec: LabelSpec) -> np.ndarray:
    """For consecutive seconds of one history, the regime level at each (NaN until R seconds)."""
    from numpy.lib.stride_tricks import sliding_window_view

    out = np.full(len(rv), np.nan)
    if len(rv) >= spec.regime_seconds:
        windows = sliding_window_view(np.asarray(rv, dtype=np.float64), spec.regime_seconds)
        out[spec.regime_seconds - 1 :] = np.quantile(windows, spec.quantile, axis=1)
    return out


def spike_labels(forward: np.ndarray, level: np.ndarray) -> np.ndarray:
    """1.0 (spike), 0.0 (calm) or NaN (no forward window, or not enough past)."""
    labels = np.where(forward > level, 1.0, 0.0)
    labels[np.isnan(forward) | np.isnan(level)] = np.nan
    return labels
