"""The status survives its round trip through the resource (what a restarted operator reads)."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.operator.factories import both, spec
from volatility_operator.rollout import decide
from volatility_operator.status import Hold, Status, from_time, parse_status, to_time

T0 = 1_800_000_000.0


def test_round_trip() -> None:
    d = decide(spec("ml"), 2, Status(), both("ml"), T0)
    held = Hold(2, "baseline", "AutomaticRollback", "why", "automatic")
    status = replace(d.status, hold=held, change_started=T0, previous="baseline")
    assert parse_status(status.to_dict()) == status


def test_times_are_rfc3339_utc() -> None:
    assert to_time(T0) == "2027-01-15T08:00:00Z"
    assert from_time("2027-01-15T08:00:00Z") == T0


def test_an_empty_or_foreign_status_reads_as_pending() -> None:
    assert parse_status(None) == Status()
    assert parse_status({"phase": "Weird", "variant": "deep"}).phase == "Pending"
