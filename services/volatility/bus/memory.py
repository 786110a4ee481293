"""In-process bus for the embedded mode: each (topic, group) is a bounded FIFO queue."""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence

from volatility.bus.base import Message, PartitionState, RevokeCallback, Subscription


class _MemorySubscription:
    def __init__(self, q: queue.Queue[Message]) -> None:
        self._q = q

    def poll(self, max_messages: int, timeout: float) -> list[Message]:
        try:
            batch = [self._q.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(batch) < max_messages:
            try:
                batch.append(self._q.get_nowait())
            except queue.Empty:
                break
        return batch

    def done(self, messages: Sequence[Message]) -> None:
        """Nothing to store: an in-process queue does not survive the process anyway."""

    def report_lag(self) -> None:
        """No lag metric: the queue is bounded and in the same process."""

    def close(self) -> None:
        """Nothing to release."""


class MemoryBus:
    """Fan-out per consumer group, like Kafka: every group sees every message once.

    Queues are bounded so that a slow stage applies back-pressure instead of growing memory.
    """

    def __init__(self, maxsize: int = 100_000) -> None:
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._queues: dict[str, dict[str, queue.Queue[Message]]] = {}
        self._offsets: dict[str, int] = {}

    def publish(
        self,
        topic: str,
        key: str | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        with self._lock:
            offset = self._offsets.get(topic, 0)
            self._offsets[topic] = offset + 1
            targets = list(self._queues.get(topic, {}).values())
        msg = Message(topic, key, value, 0, offset, tuple(headers))
        for q in targets:
            q.put(msg)

    def publish_many(self, topic: str, items: Sequence[tuple[str | None, bytes]]) -> None:
        for key, value in items:
            self.publish(topic, key, value)

    def subscribe(
        self,
        topic: str,
        group: str,
        on_revoke: RevokeCallback | None = None,
        *,
        state: PartitionState | None = None,
        tail: int | None = None,
    ) -> Subscription:
        """``state`` is never rebuilt here: the queue and the state live and die together.
        A new group's queue holds what is published after it subscribed, so ``tail`` has
        nothing to skip."""
        with self._lock:
            groups = self._queues.setdefault(topic, {})
            q = groups.setdefault(group, queue.Queue(self._maxsize))
        return _MemorySubscription(q)

    def flush(self, timeout: float = 10.0) -> int:
        return 0

    @property
    def delivery_errors(self) -> int:
        return 0

    def close(self) -> None:
        """Nothing to release."""
