"""A vector's score does not depend on the batch it is scored in, so an at-least-once
redelivery (another batch, another size, another position) publishes the same prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from volatility.exchange.recordings import iter_ticks
from volatility.features import FeatureEngine
from volatility.scoring.model import Model
from volatility.settings import DEFAULT_MODEL_DIR
from volatility.stages import ScoreStage


@pytest.mark.parametrize("variant", ["baseline", "ml"])
def test_a_rows_score_is_the_same_in_any_batch(variant: str, recordings: list[Path]) -> None:
    engine = FeatureEngine()
    recording = next(r for r in recordings if "btc-eth" in r.name)
    matrix = np.array(
        [v.values for t in iter_ticks([recording]) for v in engine.update(t)], dtype=np.float32
    )
    stage = ScoreStage(Model.load(DEFAULT_MODEL_DIR, variant))  # type: ignore[arg-type]
    whole = stage.score_matrix(matrix)
    rng = np.random.default_rng(7)
    for _ in range(4):
        order = rng.permutation(len(matrix))
        got = np.empty(len(matrix))
        start = 0
        while start < len(order):
            size = int(rng.choice([1, 2, 3, 5, 17, 64, 301]))
            rows = order[start : start + size]
            got[rows] = stage.score_matrix(matrix[rows])
            start += size
        np.testing.assert_array_equal(got, whole)
