"""Event-time pacing for replays: 1x, Nx or as fast as possible."""

from __future__ import annotations

import argparse
import threading
import time


def parse_speed(text: str) -> float | None:
    """``max`` (None: no pacing) or a positive factor such as ``1`` or ``10``; an argparse type."""
    if text == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("speed is a positive number or 'max'") from None
    if not speed > 0:
        raise argparse.ArgumentTypeError("speed must be positive")
    return speed


class Pacer:
    """Waits so that event time advances ``speed`` times faster than wall time (None: no wait)."""

    def __init__(self, speed: float | None, stop: threading.Event) -> None:
        self._speed = speed
        self._stop = stop
        self._origin: tuple[float, float] | None = None

    def wait_for(self, event_time: float) -> bool:
        """Return False when stopped while waiting."""
        if self._speed is None:
            return not self._stop.is_set()
        now = time.monotonic()
        if self._origin is None:
            self._origin = (event_time, now)
            return not self._stop.is_set()
        t0, w0 = self._origin
        delay = w0 + (event_time - t0) / self._speed - now
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()
