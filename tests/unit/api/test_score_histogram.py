"""The score histogram counts the same whether scores come one at a time or as a batch."""

from __future__ import annotations

import numpy as np

from volatility.api.metrics import SCORE_BUCKETS, ScoreHistogram
from volatility.names import LABEL_VARIANT


def _samples(histogram: ScoreHistogram) -> dict[tuple[str, str, str], float]:
    (family,) = histogram.collect()
    return {
        (s.name, s.labels[LABEL_VARIANT], s.labels.get("le", "")): s.value for s in family.samples
    }


def test_one_at_a_time_equals_batch() -> None:
    # Edges themselves (upper-inclusive buckets), values between and beyond them.
    scores = np.array([*SCORE_BUCKETS, 0.0, 0.005, 0.33, 0.999, 1.0], dtype=np.float32)
    singly = ScoreHistogram("s", "doc", SCORE_BUCKETS)
    batched = ScoreHistogram("s", "doc", SCORE_BUCKETS)
    for value in scores:
        singly.observe_many("ml", np.array([value], dtype=np.float32))
    batched.observe_many("ml", scores)
    assert _samples(singly) == _samples(batched)


def test_single_scores_land_in_upper_inclusive_buckets() -> None:
    histogram = ScoreHistogram("s", "doc", SCORE_BUCKETS)
    histogram.observe_many("baseline", np.array([0.5], dtype=np.float64))
    histogram.observe_many("baseline", np.array([0.51], dtype=np.float64))
    samples = _samples(histogram)
    assert samples[("s_bucket", "baseline", "0.4")] == 0
    assert samples[("s_bucket", "baseline", "0.5")] == 1
    assert samples[("s_bucket", "baseline", "0.6")] == 2
    assert samples[("s_bucket", "baseline", "+Inf")] == 2
    assert samples[("s_count", "baseline", "")] == 2
    assert samples[("s_sum", "baseline", "")] == 1.01
