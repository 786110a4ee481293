"""The stall detector reads librdkafka's statistics: a partition is stalled only when messages
are outstanding (queued or in flight) and none has been acknowledged for the whole period."""

from __future__ import annotations

from typing import Any

from volatility.bus.stall import StallDetector


def _stats(**partitions: tuple[int, int]) -> dict[str, Any]:
    """``p0=(queued, acknowledged)`` for partition 0 of topic ``t``, plus the UA queue (-1)."""
    parts = {
        name[1:]: {"msgq_cnt": queued, "xmit_msgq_cnt": 0, "msgs_inflight": 0, "acked_msgid": acked}
        for name, (queued, acked) in partitions.items()
    }
    parts["-1"] = {"msgq_cnt": 99, "xmit_msgq_cnt": 0, "msgs_inflight": 0, "acked_msgid": 0}
    return {"topics": {"t": {"partitions": parts}}}


def test_outstanding_messages_with_no_acknowledgement_for_the_period_are_a_stall() -> None:
    detector = StallDetector(after=10.0)
    for second in range(0, 11):
        detector.observe(_stats(p0=(5 + second, 100), p1=(3, 100 + second)), float(second))
        if second < 10:
            assert detector.stalled(float(second)) == []
    # Partition 1 kept being acknowledged; the unassigned queue (-1) is not a partition.
    assert detector.stalled(10.0) == [("t", 0)]


def test_an_empty_queue_is_never_a_stall_however_long_nothing_is_sent() -> None:
    detector = StallDetector(after=10.0)
    for second in range(0, 60):
        detector.observe(_stats(p0=(0, 100)), float(second))
    assert detector.stalled(60.0) == []


def test_acknowledgements_resuming_clear_the_stall_and_restart_the_period() -> None:
    detector = StallDetector(after=10.0)
    detector.observe(_stats(p0=(5, 100)), 0.0)
    detector.observe(_stats(p0=(9, 100)), 12.0)
    assert detector.stalled(12.0) == [("t", 0)]
    detector.observe(_stats(p0=(9, 101)), 13.0)
    assert detector.stalled(13.0) == []
    detector.observe(_stats(p0=(9, 101)), 22.0)
    assert detector.stalled(22.0) == []
    assert detector.stalled(23.0) == [("t", 0)]


def test_reset_forgets_a_replaced_producer() -> None:
    detector = StallDetector(after=1.0)
    detector.observe(_stats(p0=(5, 100)), 0.0)
    assert detector.stalled(5.0) == [("t", 0)]
    detector.reset()
    assert detector.stalled(5.0) == []


def test_re_sending_without_acknowledgement_is_still_a_stall() -> None:
    """A client stuck on a partition may transmit the same messages again and again."""
    detector = StallDetector(after=10.0)
    for second in range(0, 11):
        stats = _stats(p0=(0, 100))
        part = stats["topics"]["t"]["partitions"]["0"]
        part.update(msgs_inflight=7, txmsgs=1000 + 7 * second)
        detector.observe(stats, float(second))
    assert detector.stalled(10.0) == [("t", 0)]
