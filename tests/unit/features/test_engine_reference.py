"""The incremental engine agrees with a brute-force recomputation on real recordings."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tests.unit.features.reference import reference_vectors
from volatility.exchange.recordings import iter_ticks
from volatility.features import FEATURE_NAMES, FeatureEngine, FeatureVector
from volatility.ticks import Tick


def _engine_run(ticks: list[Tick]) -> dict[str, list[FeatureVector]]:
    engine = FeatureEngine()
    out: dict[str, list[FeatureVector]] = defaultdict(list)
    for tick in ticks:
        for vec in engine.update(tick):
            out[vec.product_id].append(vec)
    assert engine.stats.late_ticks == 0
    return out


@pytest.mark.parametrize("index", range(9))
def test_engine_matches_brute_force_on_recording(recordings: list[Path], index: int) -> None:
    ticks = list(iter_ticks([recordings[index]]))
    by_product: dict[str, list[Tick]] = defaultdict(list)
    for tick in ticks:
        by_product[tick.product_id].append(tick)
    got = _engine_run(ticks)
    assert set(got) == set(by_product)
    for product, product_ticks in by_product.items():
        want = reference_vectors(product_ticks)
        vectors = got[product]
        assert [v.event_time for v in vectors] == [t for t, _ in want]
        actual = np.array([v.values for v in vectors])
        expected = np.array([values for _, values in want])
        assert actual.shape == (len(want), len(FEATURE_NAMES))
        bad = ~np.isclose(actual, expected, rtol=1e-7, atol=1e-6)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            pytest.fail(
                f"{product} t={vectors[row].event_time} {FEATURE_NAMES[col]}: "
                f"engine {actual[row, col]!r} != reference {expected[row, col]!r}"
            )
