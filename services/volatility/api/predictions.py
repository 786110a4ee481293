"""The pipeline's predictions, read from the bus: the latest per product and a live feed.

A reader thread subscribes to the predictions topic with a consumer group of its own per process
(so every API replica sees every partition), keeps the latest prediction per product and hands
each batch to the live stream's listeners on the event loop. Nothing it meets stops the API: a
broker that is missing or slow only delays predictions (the bus client reconnects by itself, a
failed subscription is retried), and a malformed message is counted and skipped.

A new reader starts ``TAIL`` messages before the end of each partition, not at the topic's
earliest retained message (a week of predictions by default): every product publishes a
prediction each second, so the latest of each is among them, and a pod starts without replaying
the topic. Predictions older than ``max_age`` (event time) are not pushed to live listeners.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Final

from volatility.bus.base import Bus, Message, Subscription
from volatility.messages import MessageError, Prediction, decode_prediction

log = logging.getLogger(__name__)

POLL_MAX: Final = 5000
POLL_SECONDS: Final = 0.5
RETRY_SECONDS: Final = 2.0
LISTENER_BACKLOG: Final = 1000
# Messages read back per partition at start: several minutes of every product in it.
TAIL: Final = 1000


def process_group(base: str) -> str:
    """A group of this process's own: replicas (and workers) each read every partition."""
    return f"{base}-{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Seen:
    prediction: Prediction
    received: float  # wall clock when this process read it


class Listener:
    """One live-stream client: a bounded queue; when the client falls behind the oldest
    predictions are dropped (and counted) rather than memory growing."""

    def __init__(self, backlog: int = LISTENER_BACKLOG) -> None:
        self.queue: asyncio.Queue[Prediction] = asyncio.Queue(backlog)
        self.dropped = 0

    def offer(self, prediction: Prediction) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(prediction)


class PredictionFeed:
    """The latest prediction per product, and the listeners of new ones.

    Written by the reader thread; listeners live on the event loop given to :meth:`attach`.
    """

    def __init__(self, source: str, max_age: float, on_read: Callable[[int, int], None]) -> None:
        self.source = source
        self.max_age = max_age
        self._on_read = on_read
        self._lock = threading.Lock()
        self._latest: dict[str, Seen] = {}
        self._last_received: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: set[Listener] = set()

    def attach(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop

    def latest(self) -> dict[str, Seen]:
        with self._lock:
            return dict(self._latest)

    @property
    def last_received(self) -> float | None:
        return self._last_received

    def add(self, predictions: Sequence[Prediction], rejected: int = 0) -> None:
        """Record predictions read (in bus order) and pass the live ones to the listeners."""
        self._on_read(len(predictions), rejected)
        if not predictions:
            return
        now = time.time()
        with self._lock:
            for p in predictions:
                known = self._latest.get(p.product_id)
                if known is None or p.event_time >= known.prediction.event_time:
                    self._latest[p.product_id] = Seen(p, now)
            self._last_received = now
        live = [p for p in predictions if now - p.event_time <= self.max_age]
        loop = self._loop
        if live and loop is not None and self._listeners:
            with suppress(RuntimeError):  # the loop closed: the API is stopping
                loop.call_soon_threadsafe(self._fan_out, live)

    def _fan_out(self, predictions: list[Prediction]) -> None:
        for listener in list(self._listeners):
            for p in predictions:
                listener.offer(p)

    def listen(self) -> Listener:
        listener = Listener()
        self._listeners.add(listener)
        return listener

    def forget(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    @property
    def listeners(self) -> int:
        return len(self._listeners)


class PredictionReader:
    """Reads the predictions topic in a thread until :meth:`stop`."""

    def __init__(self, bus: Bus, topic: str, group: str, feed: PredictionFeed) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.feed = feed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="predictions-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        subscription: Subscription | None = None
        while not self._stop.is_set():
            try:
                if subscription is None:
                    subscription = self.bus.subscribe(self.topic, self.group, tail=TAIL)
                    log.info(
                        "reading predictions", extra={"topic": self.topic, "group": self.group}
                    )
                batch = subscription.poll(POLL_MAX, POLL_SECONDS)
            except Exception as exc:  # the bus's failure must not end the reader: retry
                log.warning("predictions unavailable, retrying", extra={"error": str(exc)})
                _close(subscription)
                subscription = None
                self._stop.wait(RETRY_SECONDS)  # a retry period, not a wait for an event
                continue
            if batch:
                self._handle(batch)
        _close(subscription)

    def _handle(self, batch: Sequence[Message]) -> None:
        predictions: list[Prediction] = []
        rejected = 0
        for m in batch:
            try:
                predictions.append(decode_prediction(m.value))
            except MessageError as exc:
                rejected += 1
                log.debug("malformed prediction skipped", extra={"reason": exc.reason})
        predictions.sort(key=lambda p: p.event_time)
        self.feed.add(predictions, rejected)


def _close(subscription: Subscription | None) -> None:
    if subscription is not None:
        try:
            subscription.close()
        except Exception as exc:  # closing a broken client: nothing more to do
            log.debug("closing the predictions subscription: %s", exc)
