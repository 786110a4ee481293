"""Guards that refuse an evaluation that could see the future it is asked to predict."""

from __future__ import annotations

import numpy as np

from volatility_training.dataset import Dataset
from volatility_training.labels import LabelSpec, row_at_offset


class LeakageError(ValueError):
    """A split or a label lets information from the test period or the future leak in."""


def check_split(train_times: np.ndarray, test_times: np.ndarray, horizon: float) -> None:
    """Raise unless every training row precedes every test row by at least ``horizon`` seconds.

    A training row at t is labelled from [t, t + horizon): with a smaller gap its label would
    overlap the test period.
    """
    if not len(train_times) or not len(test_times):
        raise LeakageError("a split needs both training and test rows")
    last_train, first_test = float(np.max(train_times)), float(np.min(test_times))
    if last_train >= first_test:
        late = int(np.sum(train_times >= first_test))
        raise LeakageError(
            f"test rows precede training rows: {late} training rows at or after the first "
            f"test row (t={first_test:.0f})"
        )
    if first_test - last_train < horizon:
        close = int(np.sum(train_times > first_test - horizon))
        raise LeakageError(
            f"{close} training rows are within the {horizon:g} s horizon of the first test row "
            f"(gap {first_test - last_train:g} s)"
        )


def check_forward_target(ds: Dataset, forward: np.ndarray, horizon: int) -> None:
    """Raise unless ``forward`` at t is the volatility of [t, t + horizon), read from the future.

    Every labelled row must have the row at t + horizon in its own uninterrupted history and
    carry that row's rv; a target that equals the window ending at t (current volatility) where
    the two differ is called out as such.
    """
    spec = LabelSpec(horizon=horizon)
    if forward.shape != (len(ds),):
        raise LeakageError(f"target has shape {forward.shape}, expected ({len(ds)},)")
    rv = ds.column(spec.feature)
    later = row_at_offset(ds, horizon)
    labelled = ~np.isnan(forward)
    incomplete = labelled & (later < 0)
    if incomplete.any():
        raise LeakageError(
            f"{int(incomplete.sum())} rows are labelled without a complete {horizon} s horizon"
        )
    rows = np.flatnonzero(labelled)
    future = rv[later[rows]]
    wrong = forward[rows] != future
    if wrong.any():
        current = rv[rows]
        distinct = current != future
        if np.all(forward[rows][distinct] == current[distinct]):
            raise LeakageError(
                "the label is computed from the window ending at t (current volatility), "
                f"not from [t, t + {horizon}) ({int(wrong.sum())} rows)"
            )
        raise LeakageError(
            f"{int(wrong.sum())} labelled rows do not carry the volatility of [t, t + {horizon})"
        )
