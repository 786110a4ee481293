"""Exponential backoff with full jitter: the wait before attempt n is uniform in [0, cap_n]."""

from __future__ import annotations

import random


class Backoff:
    """``cap_n = min(maximum, initial * multiplier**n)``; seed it for reproducible waits."""

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        multiplier: float = 2.0,
        seed: int | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial or multiplier < 1:
            raise ValueError("need 0 < initial <= maximum and multiplier >= 1")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.attempt = 0
        self._rng = random.Random(seed)

    def cap(self) -> float:
        # Compare exponents rather than computing huge powers after many failures.
        if self.attempt > 64:
            return self.maximum
        return min(self.maximum, self.initial * self.multiplier**self.attempt)

    def next_delay(self) -> float:
        delay = self._rng.uniform(0.0, self.cap())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
