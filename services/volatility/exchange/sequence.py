"""Sequence-number bookkeeping: the exchange numbers every frame of a connection, all channels."""

from __future__ import annotations


class SequenceTracker:
    """Counts gaps (frames lost between two received ones) and numbers that went backwards.

    Numbering restarts with every connection, so `reset()` is called on reconnect; the first
    number seen after a reset is accepted whatever it is.
    """

    def __init__(self) -> None:
        self.last: int | None = None
        self.gaps = 0  # how many times numbers jumped forward
        self.missed = 0  # how many numbers those jumps skipped
        self.backwards = 0  # repeated or decreasing numbers

    def observe(self, sequence_num: int | None) -> int:
        """Record one number; returns how many numbers were skipped just before it."""
        if sequence_num is None:
            return 0
        last = self.last
        if last is None or sequence_num == last + 1:
            self.last = sequence_num
            return 0
        if sequence_num <= last:
            self.backwards += 1
            return 0
        skipped = sequence_num - last - 1
        self.gaps += 1
        self.missed += skipped
        self.last = sequence_num
        return skipped

    def reset(self) -> None:
        self.last = None
