"""One interface, two implementations (``memory`` and ``kafka``).

The service loops use only what is declared here; an implementation may do nothing for a
method it has no use for (the in-process bus has no lag and nothing to rebuild from).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

#: Called with the partitions a subscription loses (rebalance) so per-partition state is dropped.
RevokeCallback = Callable[[Sequence[int]], None]


class BusUnavailableError(RuntimeError):
    """The broker cannot be reached, a required topic does not exist, or published outputs
    were reported lost (the process restarts from its committed input positions)."""


class Message(NamedTuple):
    """One message read from the bus (a tuple: created per message on the hot path)."""

    topic: str
    key: str | None
    value: bytes
    partition: int = 0
    offset: int = -1
    headers: tuple[tuple[str, bytes], ...] = ()


class PartitionState(Protocol):
    """Per-partition state a subscriber can rebuild by re-reading its input (the featurizer)."""

    def checkpoint(self, partition: int) -> int | None:
        """The offset from which the partition's current state can be rebuilt, if known."""

    def rebuild(self, partition: int, until: int) -> None:
        """The partition is being re-read from its checkpoint; outputs of the messages before
        ``until`` were published already."""


class Subscription(Protocol):
    def poll(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to ``max_messages`` messages; an empty list when none arrived within ``timeout``."""

    def done(self, messages: Sequence[Message]) -> None:
        """Mark ``messages`` processed. Call only once everything produced for them has been
        acknowledged (``Bus.flush``): their positions are then stored, giving at-least-once."""

    def report_lag(self) -> None:
        """Export how far behind the input this subscription is (a metric), if the bus knows."""

    def close(self) -> None: ...


class Bus(Protocol):
    def publish(
        self,
        topic: str,
        key: str | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None: ...

    def publish_many(self, topic: str, items: Sequence[tuple[str | None, bytes]]) -> None:
        """Publish keyed values in order, without headers (the hot path)."""

    def subscribe(
        self,
        topic: str,
        group: str,
        on_revoke: RevokeCallback | None = None,
        *,
        state: PartitionState | None = None,
        tail: int | None = None,
    ) -> Subscription:
        """A group's subscription to ``topic``. A group without committed offsets starts at
        the earliest retained message, or, with ``tail``, at most ``tail`` messages before
        the end of each partition it is assigned."""
        ...

    def flush(self, timeout: float = 10.0) -> int:
        """Wait for published messages to be acknowledged; return how many are still pending."""

    @property
    def delivery_errors(self) -> int:
        """Published messages the bus reported lost since it was created (never decreases)."""

    def close(self) -> None: ...
