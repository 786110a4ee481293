from __future__ import annotations

import pytest

from volatility.exchange.backoff import Backoff
from volatility.exchange.sequence import SequenceTracker


def test_sequence_gaps_are_counted_and_reset_per_connection() -> None:
    tracker = SequenceTracker()
    assert [tracker.observe(n) for n in (5, 6, 7, 10, 11, None, 12, 15)] == [0, 0, 0, 2, 0, 0, 0, 2]
    assert (tracker.gaps, tracker.missed, tracker.backwards) == (2, 4, 0)
    tracker.observe(12)
    tracker.observe(15)
    assert tracker.backwards == 2
    tracker.reset()  # a new connection numbers from anywhere
    assert tracker.observe(0) == 0 and tracker.observe(1) == 0
    assert tracker.gaps == 2


def test_backoff_is_full_jitter_bounded_and_seeded() -> None:
    a = Backoff(0.5, 4.0, 2.0, seed=3)
    b = Backoff(0.5, 4.0, 2.0, seed=3)
    delays = [a.next_delay() for _ in range(12)]
    assert delays == [b.next_delay() for _ in range(12)]
    caps = [0.5, 1.0, 2.0, 4.0] + [4.0] * 8
    assert all(0.0 <= d <= c for d, c in zip(delays, caps, strict=True))
    assert max(delays[4:]) > 1.0  # the cap grew and jitter uses the range
    a.reset()
    assert a.cap() == 0.5
    many = Backoff(1.0, 10.0, 3.0, seed=1)
    for _ in range(1000):
        assert many.next_delay() <= 10.0
    with pytest.raises(ValueError, match="initial"):
        Backoff(0.0, 1.0)
