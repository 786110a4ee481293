"""The liveness test of the watch: behind the API server for longer than the tolerance."""

from __future__ import annotations

from volatility_operator.watchhealth import WatchHealth


def test_a_watch_that_keeps_up_is_healthy() -> None:
    w = WatchHealth(tolerance=30)
    w.delivered("a", "10")
    assert w.check({"a": "10"}, 0.0) is None
    w.delivered("a", "11")
    assert w.check({"a": "11"}, 100.0) is None


def test_a_short_lag_is_tolerated_a_long_one_is_reported() -> None:
    w = WatchHealth(tolerance=30)
    w.delivered("a", "10")
    assert w.check({"a": "12"}, 0.0) is None
    assert w.check({"a": "12"}, 29.0) is None
    problem = w.check({"a": "12"}, 31.0)
    assert problem is not None and "a (behind for 31s)" in problem
    w.delivered("a", "12")  # the watch caught up
    assert w.check({"a": "12"}, 32.0) is None


def test_an_object_the_watch_never_delivered_counts_as_behind() -> None:
    w = WatchHealth(tolerance=5)
    assert w.check({"new": "1"}, 0.0) is None
    assert w.check({"new": "1"}, 6.0) is not None


def test_deleted_objects_are_forgotten() -> None:
    w = WatchHealth(tolerance=5)
    w.delivered("a", "1")
    assert w.check({"a": "2"}, 0.0) is None
    w.deleted("a")
    assert w.check({}, 100.0) is None
