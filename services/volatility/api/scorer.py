"""Running a model on decoded rows and recording what it did."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from volatility.api.decode import InputError
from volatility.api.metrics import ApiMetrics
from volatility.scoring.model import Model

_EMPTY = np.empty(0, dtype=np.float32)


def score(
    model: Model, features: np.ndarray, metrics: ApiMetrics, row_field: Callable[[int], str]
) -> np.ndarray:
    """Spike probabilities for float32 [n, F] (n may be 0: nothing to run).

    A row the model cannot score (finite input outside its domain, e.g. a negative volatility
    under a log) is the caller's input at fault: InputError naming the row, not a server error.
    """
    if not len(features):
        return _EMPTY
    start = time.perf_counter()
    scores = model.score(features)
    elapsed = time.perf_counter() - start
    if not math.isfinite(scores.sum(dtype=np.float64)):
        row = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise InputError(
            422,
            f"the {model.contract.variant} model gives no finite score for these values "
            "(outside the range features take)",
            row_field(row),
        )
    metrics.observe_scoring(model.contract.variant, scores, elapsed)
    return scores
