"""One interface, two implementations (``memory`` and ``kafka``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

#: Called with the partitions a subscription loses (rebalance) so per-partition state is dropped.
RevokeCallback = Callable[[Sequence[int]], None]


class Message(NamedTuple):
    """One message read from the bus (a tuple: created per message on the hot path)."""

    topic: str
    key: str | None
    value: bytes
    partition: int = 0
    offset: int = -1
    headers: tuple[tuple[str, bytes], ...] = ()


class Subscription(Protocol):
    def poll(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to ``max_messages`` messages; an empty list when none arrived within ``timeout``."""

    def done(self, messages: Sequence[Message]) -> None:
        """Mark ``messages`` processed. Call only once everything produced for them has been
        acknowledged (``Bus.flush``): their positions are then stored, giving at-least-once."""

    def close(self) -> None: ...


class Bus(Protocol):
    def publish(
        self,
        topic: str,
        key: str | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None: ...

    def subscribe(
        self, topic: str, group: str, on_revoke: RevokeCallback | None = None
    ) -> Subscription: ...

    def flush(self, timeout: float = 10.0) -> int:
        """Wait for published messages to be acknowledged; return how many are still pending."""

    def close(self) -> None: ...
