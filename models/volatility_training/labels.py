"""Spike labels: is the next ``horizon`` seconds unusually volatile for the product's own regime?

Window convention (see `volatility.features.engine`): the vector at whole second ``s`` describes
the ticks with event time in ``[s - W, s)``, and a tick's return is the log of its mid over the
previous tick's mid. Hence the engine's ``rv_{h}s`` at ``t + h`` is the realized volatility of the
mid log returns of the ticks with event time in ``[t, t + h)``, in bps per 60 s: exactly the ticks
that the vector at ``t`` has not seen. That is the *forward volatility* of the row at ``t``, read
from the row at ``t + h`` of the same uninterrupted history.

The *regime level* of the row at ``t`` is the ``quantile`` of the same quantity over the product's
own recent past: the ``rv_{h}s`` of the rows at ``t - R + 1, ..., t`` of the same history
(``R = regime_seconds``), windows that all end by ``t``. It is estimated only from the past, so it
is known when the prediction is made, and it follows the product's regime: a calm session and a
busy one each have spikes of their own, instead of one session being all spikes.

A row is a spike when its forward volatility is strictly above its regime level. A row without a
complete horizon after it, or without ``R`` seconds of history before it, has no label (NaN).
Nothing is fitted: the same rule (`volatility.scoring.target`) labels training, evaluation and
live data.
"""

from __future__ import annotations

import numpy as np

from volatility.scoring.target import (
    MIN_REGIME_SECONDS,
    LabelSpec,
    regime_levels,
    spike_labels,
)
from volatility.scoring.target_defaults import (
    DEFAULT_HORIZON,
    DEFAULT_QUANTILE,
    DEFAULT_REGIME_SECONDS,
)
from volatility_training.dataset import Dataset

__all__ = [
    "DEFAULT_HORIZON",
    "DEFAULT_QUANTILE",
    "DEFAULT_REGIME_SECONDS",
    "MIN_REGIME_SECONDS",
    "LabelSpec",
    "forward_volatility",
    "label_dataset",
    "regime_level",
    "row_at_offset",
    "spike_labels",
]


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


def regime_level(ds: Dataset, spec: LabelSpec) -> np.ndarray:
    """Per row, the regime level of its history (see `volatility.scoring.target`).

    Inside a history the engine emits every whole second, so R consecutive rows are the seconds
    ``(t - R, t]``.
    """
    rv = ds.column(spec.feature)
    out = np.full(len(ds), np.nan)
    for history in np.unique(ds.histories):
        rows = np.flatnonzero(ds.histories == history)
        out[rows] = regime_levels(rv[rows], spec)
    return out


def label_dataset(ds: Dataset, spec: LabelSpec) -> np.ndarray:
    """The spike label of every row of ``ds`` (see the module docstring)."""
    return spike_labels(forward_volatility(ds, spec.horizon), regime_level(ds, spec))
