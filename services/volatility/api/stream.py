"""GET /predictions/stream: the pipeline's predictions as Server-Sent Events.

A browser's ``EventSource`` or ``curl -N`` can follow it. On connecting, a ``latest`` event per
product gives the current state; then every new prediction comes as a ``prediction`` event
(its ``spike`` field flags spikes); a comment line is sent when the stream is idle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from volatility.api.jsonio import dumps
from volatility.api.metrics import ApiMetrics
from volatility.api.predictions import PredictionFeed
from volatility.messages import Prediction

# Tells EventSource clients how soon to reconnect (milliseconds).
RETRY = b"retry: 2000\n\n"
KEEPALIVE = b": keep-alive\n\n"


class EventStreamResponse(StreamingResponse):
    """Ends as soon as the client goes: it waits for the disconnect beside the stream, which a
    quiet stream would otherwise notice only at its next write (servers speaking ASGI 2.4)."""

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                with suppress(OSError):  # the client went while we wrote
                    await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()


def prediction_out(prediction: Prediction, now: float) -> dict[str, Any]:
    doc = prediction.as_dict()
    doc["age_seconds"] = round(now - prediction.event_time, 3)
    return doc


def _event(kind: bytes, prediction: Prediction) -> bytes:
    data = dumps(prediction_out(prediction, time.time()))
    return b"event: " + kind + b"\ndata: " + data + b"\n\n"


async def event_stream(
    feed: PredictionFeed,
    metrics: ApiMetrics,
    *,
    product: str | None,
    spikes_only: bool,
    keepalive: float,
) -> AsyncIterator[bytes]:
    def wanted(p: Prediction) -> bool:
        return (product is None or p.product_id == product) and (p.spike or not spikes_only)

    listener = feed.listen()  # before the snapshot: nothing falls between the two
    metrics.stream_clients.inc()
    try:
        yield RETRY
        latest = feed.latest()
        for name in sorted(latest):
            if wanted(latest[name].prediction):
                yield _event(b"latest", latest[name].prediction)
        while True:
            try:
                prediction = await asyncio.wait_for(listener.queue.get(), keepalive)
            except TimeoutError:
                yield KEEPALIVE
                continue
            if wanted(prediction):
                yield _event(b"prediction", prediction)
    finally:
        feed.forget(listener)
        metrics.stream_clients.dec()
