"""Guards that refuse an evaluation that could see the future it is asked to predict.

They are deliberately written apart from the code they guard: the split guard reasons on raw
times and session ids (not on folds), and the label guard recomputes every label row by row from
the dataset (searching times, not using the vectorised label code). A bug in the splitter or in
the labels therefore meets an independent check on the path every evaluation takes.
"""

from __future__ import annotations

import numpy as np

from volatility_training.dataset import Dataset
from volatility_training.labels import LabelSpec


class LeakageError(ValueError):
    """A split or a label lets information from the test period or the future leak in."""


def check_split(
    train_times: np.ndarray,
    train_sessions: np.ndarray,
    test_times: np.ndarray,
    test_sessions: np.ndarray,
    horizon: float,
) -> None:
    """Raise unless training and test rows come from different sessions and no training row
    lies within ``horizon`` seconds of a test row (before or after it).

    A row at t is labelled from [t, t + horizon): a training row closer than that to a test row
    has a label window overlapping the test row's.
    """
    if not len(train_times) or not len(test_times):
        raise LeakageError("a split needs both training and test rows")
    shared = np.intersect1d(np.unique(train_sessions), np.unique(test_sessions))
    if len(shared):
        raise LeakageError(
            f"training and test rows share sessions {shared.tolist()}: a session must be "
            "tested by a model that never saw it"
        )
    sorted_test = np.sort(np.asarray(test_times, dtype=np.float64))
    at = np.searchsorted(sorted_test, train_times)
    after = np.abs(sorted_test[np.minimum(at, len(sorted_test) - 1)] - train_times)
    before = np.abs(train_times - sorted_test[np.maximum(at - 1, 0)])
    nearest = np.minimum(after, before)
    close = nearest < horizon
    if close.any():
        raise LeakageError(
            f"{int(close.sum())} training rows are within the {horizon:g} s horizon of a test "
            f"row (closest {float(nearest.min()):g} s)"
        )


def check_labels(ds: Dataset, labels: np.ndarray, spec: LabelSpec) -> None:
    """Raise unless every label is the forward volatility of [t, t + horizon) compared with the
    ``quantile`` of the rows of the ``regime_seconds`` up to t, in the row's own history.

    Recomputed row by row: the row at t + horizon is found by its time, the regime rows by their
    times, and a label that exists where its horizon or its past is incomplete is refused.
    """
    if labels.shape != (len(ds),):
        raise LeakageError(f"labels have shape {labels.shape}, expected ({len(ds)},)")
    rv = ds.column(spec.feature)
    no_future = no_past = wrong = from_now = 0
    for history in np.unique(ds.histories).tolist():
        rows = np.flatnonzero(ds.histories == history)
        order = rows[np.argsort(ds.times[rows], kind="stable")]
        times = ds.times[order]
        for k, row in enumerate(order.tolist()):
            label = labels[row]
            if np.isnan(label):
                continue
            t = times[k]
            j = int(np.searchsorted(times, t + spec.horizon))
            if j >= len(times) or times[j] != t + spec.horizon:
                no_future += 1
                continue
            first = int(np.searchsorted(times, t - spec.regime_seconds, side="right"))
            past = rv[order[first : k + 1]]
            if len(past) != spec.regime_seconds:
                no_past += 1
                continue
            level = float(np.quantile(past, spec.quantile))
            expected = 1.0 if rv[order[j]] > level else 0.0
            if label != expected:
                wrong += 1
                if label == (1.0 if rv[row] > level else 0.0):
                    from_now += 1
    if no_future:
        raise LeakageError(
            f"{no_future} rows are labelled without a complete {spec.horizon} s horizon"
        )
    if no_past:
        raise LeakageError(
            f"{no_past} rows are labelled without {spec.regime_seconds} s of past to set the "
            "regime level"
        )
    if wrong:
        hint = (
            " (they match the window ending at t, current volatility)" if from_now == wrong else ""
        )
        raise LeakageError(
            f"{wrong} labels are not [t, t + {spec.horizon}) volatility above the "
            f"{spec.quantile:g} quantile of the past {spec.regime_seconds} s{hint}"
        )
