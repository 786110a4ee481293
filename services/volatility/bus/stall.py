"""Which partitions a producer has stopped sending to, read from librdkafka's statistics.

After a transient leader loss (a restarting broker answers a produce request with leader -1),
librdkafka can leave a partition without a leader for good: its queued messages are never sent,
even once the broker serves the partition again (confluentinc/librdkafka#5430, open in 2.16).
A partition is *stalled* when it has messages outstanding (queued or in flight) and none has
been acknowledged for ``after`` seconds: acknowledgements, not transmissions, since a client
stuck on a partition can keep re-sending the same messages. Whether the broker serves the
partition meanwhile is the adapter's question.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Partition = tuple[str, int]


@dataclass
class _Progress:
    acknowledged: int
    outstanding: int
    since: float  # when a message was last acknowledged, or nothing was outstanding


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
                # The idempotent producer's last acknowledged message id.
                acked = int(part.get("acked_msgid", 0))
                outstanding = sum(
                    int(part.get(k, 0)) for k in ("msgq_cnt", "xmit_msgq_cnt", "msgs_inflight")
                )
                previous = self._progress.get((topic, partition))
                if previous is None or outstanding == 0 or acked != previous.acknowledged:
                    self._progress[(topic, partition)] = _Progress(acked, outstanding, now)
                else:
                    previous.outstanding = outstanding

    def stalled(self, now: float) -> list[Partition]:
        return sorted(
            key
            for key, p in self._progress.items()
            if p.outstanding > 0 and now - p.since >= self.after
        )

    def reset(self) -> None:
        """Forget everything (the producer these statistics came from was replaced)."""
        self._progress.clear()
