"""Which partitions a producer has stopped sending to, read from librdkafka's statistics.

After a transient leader loss (a restarting broker answers a produce request with leader -1),
librdkafka can leave a partition without a leader for good: its queued messages are never sent,
even once the broker serves the partition again (confluentinc/librdkafka#5430, open in 2.16).
A partition is *stalled* when messages wait in its queue and none has been transmitted for
``after`` seconds. Whether the broker serves it meanwhile is the adapter's question.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Partition = tuple[str, int]


@dataclass
class _Progress:
    transmitted: int
    queued: int
    since: float  # when it last transmitted, or last had nothing queued


class StallDetector:
    def __init__(self, after: float) -> None:
        self.after = after
        self._progress: dict[Partition, _Progress] = {}

    def observe(self, stats: Mapping[str, Any], now: float) -> None:
        """Take one statistics document (librdkafka's ``stats_cb`` JSON, decoded)."""
        for topic, body in stats.get("topics", {}).items():
            for key, part in body.get("partitions", {}).items():
                partition = int(key)
                if partition < 0:  # the unassigned-partition queue, not a partition
                    continue
                sent = int(part.get("txmsgs", 0))
                queued = int(part.get("msgq_cnt", 0)) + int(part.get("xmit_msgq_cnt", 0))
                previous = self._progress.get((topic, partition))
                if previous is None or queued == 0 or sent != previous.transmitted:
                    self._progress[(topic, partition)] = _Progress(sent, queued, now)
                else:
                    previous.queued = queued

    def stalled(self, now: float) -> list[Partition]:
        return sorted(
            key for key, p in self._progress.items() if p.queued > 0 and now - p.since >= self.after
        )

    def reset(self) -> None:
        """Forget everything (the producer these statistics came from was replaced)."""
        self._progress.clear()
