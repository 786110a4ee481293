"""Session-grouped folds: each recorded session is tested once, on a model that never saw it.

Leave-one-session-out: fold k tests on every row of session k and trains on the other sessions.
Sessions recorded close together (two files minutes apart) are not independent, so training rows
closer than ``gap`` seconds (at least the label horizon) to any test row are purged: no training
label window can overlap a test label window. Never random, never stratified, never cut inside a
session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    session: int  # the session tested
    train: np.ndarray  # row indices
    test: np.ndarray  # row indices


def session_folds(
    sessions: np.ndarray, times: np.ndarray, gap: float, rows: np.ndarray | None = None
) -> list[Fold]:
    """One fold per session among ``rows`` (default: every row), in session order."""
    candidates = np.arange(len(sessions)) if rows is None else np.asarray(rows)
    folds: list[Fold] = []
    for session in np.unique(sessions[candidates]).tolist():
        in_session = sessions[candidates] == session
        test = candidates[in_session]
        others = candidates[~in_session]
        lo, hi = float(times[test].min()), float(times[test].max())
        # Sessions are contiguous in time, so the test rows' span is the session's span.
        near = (times[others] > lo - gap) & (times[others] < hi + gap)
        train = others[~near]
        if len(train):
            folds.append(Fold(session=int(session), train=train, test=test))
    return folds
