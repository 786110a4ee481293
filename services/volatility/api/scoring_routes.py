"""The two scoring endpoints (POST /predict and v2 infer), framework-free, plus an ASGI fast path.

FastAPI's per-request machinery (routing, dependency solving, response wrapping) costs several
times what decoding and scoring one row does. :class:`FastPaths` answers the two scoring routes
directly at the ASGI level; the FastAPI routes, which document them in OpenAPI, call the same
:class:`ScoringEndpoints`, so both paths give identical answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Final, NamedTuple
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from volatility.api import openinference, predict
from volatility.api.decode import InputError, check_content_type
from volatility.api.jsonio import dumps
from volatility.api.limits import ByteBudget
from volatility.api.metrics import ApiMetrics
from volatility.api.openinference import Reply
from volatility.api.registry import ModelRegistry, NotLoaded, Served
from volatility.api.settings import ApiSettings
from volatility.names import VARIANTS

PREDICT_PATH: Final = "/predict"
INFER_PATH: Final = "/v2/models/{name}/infer"
INFER_VERSION_PATH: Final = "/v2/models/{name}/versions/{version}/infer"
_V2_PREFIX: Final = "/v2/models/"
_V2_SUFFIX: Final = "/infer"
_VERSIONS: Final = "/versions/"
JSON_TYPE: Final = "application/json"
BINARY_TYPE: Final = "application/octet-stream"
# The binary tensor extension: the length of the JSON part that starts the body.
INFERENCE_HEADER: Final = "inference-header-content-length"


class ClientGone(Exception):
    """The client disconnected before sending its whole body: nothing to answer."""


class Head(NamedTuple):
    """The request headers the scoring routes read (latin-1 decoded)."""

    content_type: str | None = None
    content_length: str | None = None
    inference_header: str | None = None
    content_encoding: str | None = None
    problem: str | None = None  # a header given twice with different values


def read_head(headers: Iterable[tuple[bytes, bytes]]) -> Head:
    found: dict[bytes, str] = {}
    problem = None
    for key, raw in headers:
        if key in _WANTED:
            value = raw.decode("latin-1")
            if found.setdefault(key, value) != value:
                problem = f"{key.decode()} given twice with different values"
    return Head(
        found.get(b"content-type"),
        found.get(b"content-length"),
        found.get(INFERENCE_HEADER.encode()),
        found.get(b"content-encoding"),
        problem,
    )


_WANTED: Final = frozenset(
    {b"content-type", b"content-length", INFERENCE_HEADER.encode(), b"content-encoding"}
)


def declared_length(head: Head, limit: int) -> int | None:
    """The body's declared size: 400 unless a plain decimal number, 413 beyond ``limit``."""
    if head.problem is not None:
        raise InputError(400, head.problem, "headers")
    if head.content_encoding is not None and head.content_encoding.lower() != "identity":
        raise InputError(
            415,
            f"{head.content_encoding} is not supported; send the body uncompressed",
            "content-encoding",
        )
    declared = head.content_length
    if declared is None:
        return None
    if not (declared.isascii() and declared.isdigit()):
        raise InputError(
            400, f"must be a decimal number of bytes, got {declared[:40]!r}", "content-length"
        )
    size = int(declared)
    if size > limit:
        raise InputError(413, f"{size} bytes exceed the limit of {limit}", "body")
    return size


async def read_body(receive: Receive, limit: int, declared: int | None) -> bytes | bytearray:
    """The whole body, held once: chunks are copied into one buffer as they arrive."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    first: bytes = message.get("body", b"")
    if len(first) > limit:
        raise InputError(413, f"more than {limit} bytes", "body")
    if not message.get("more_body", False):
        return first  # the common case: one chunk
    buffer = bytearray(declared or 0)
    size = 0
    chunk = first
    while True:
        end = size + len(chunk)
        if end > limit:
            raise InputError(413, f"more than {limit} bytes", "body")
        if end <= len(buffer):
            buffer[size:end] = chunk
        else:
            del buffer[size:]
            buffer += chunk
        size = end
        if not message.get("more_body", False):
            del buffer[size:]  # a body shorter than declared
            return buffer
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")


def _problem(key: str, detail: str) -> bytes:
    return dumps({key: detail})


class Answer(NamedTuple):
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    # The binary tensor extension: the JSON part's length, sent as Inference-Header-Content-Length.
    json_length: int | None = None

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = [
            (b"content-type", self.content_type.encode()),
            (b"content-length", str(len(self.body)).encode()),
        ]
        if self.json_length is not None:
            out.append((INFERENCE_HEADER.encode(), str(self.json_length).encode()))
        return out


class ScoringEndpoints:
    def __init__(self, settings: ApiSettings, registry: ModelRegistry, metrics: ApiMetrics) -> None:
        self.registry = registry
        self.metrics = metrics
        self.limit = settings.max_body_bytes
        self.max_rows = settings.max_batch_rows
        self.offload = settings.offload_body_bytes
        self.budget = ByteBudget(settings.body_buffer_bytes)
        self._threads = settings.scoring_threads
        self._workers: asyncio.Semaphore | None = None

    def _served(self) -> Served | None:
        return self.registry.current

    async def predict(self, head: Head, receive: Receive, variant: str | None) -> Answer:
        """POST /predict; errors as {"detail": ...}."""
        max_rows, metrics = self.max_rows, self.metrics

        def run(served: Served, body: bytes | bytearray) -> Reply:
            return Reply(predict.predict(served, body, variant, max_rows, metrics))

        return await self._score("detail", head, False, receive, run)

    async def infer(self, name: str, version: str | None, head: Head, receive: Receive) -> Answer:
        """v2 infer; errors as {"error": ...} (the protocol's shape).

        The protocol is tolerant of a body without a content type (Triton's client sends none)
        and has a binary tensor extension (announced by Inference-Header-Content-Length).
        """
        max_rows, metrics = self.max_rows, self.metrics
        binary = head.inference_header

        def run(served: Served, body: bytes | bytearray) -> Reply:
            return openinference.infer(served, name, version, body, binary, max_rows, metrics)

        return await self._score("error", head, True, receive, run)

    async def _score(
        self,
        error_key: str,
        head: Head,
        v2: bool,
        receive: Receive,
        score: Callable[[Served, bytes | bytearray], Reply],
    ) -> Answer:
        def attempt(served: Served, body: bytes | bytearray) -> Answer:
            # Errors become answers here, where they are raised: an exception carried out of a
            # worker thread would keep the body alive through its traceback's frames until the
            # next garbage collection.
            try:
                reply = score(served, body)
            except InputError as exc:
                return Answer(exc.status, _problem(error_key, str(exc)))
            except NotLoaded as exc:
                return Answer(404, _problem(error_key, str(exc)))
            if reply.json_length is None:
                return Answer(200, reply.body)
            return Answer(200, reply.body, BINARY_TYPE, reply.json_length)

        try:
            if not (v2 and head.inference_header is not None):
                check_content_type(head.content_type, missing_ok=v2)
            declared = declared_length(head, self.limit)
        except InputError as exc:
            return Answer(exc.status, _problem(error_key, str(exc)))
        reserved = self.limit if declared is None else declared
        budget = self.budget
        if not budget.take_now(reserved):
            await budget.take(reserved)
        try:
            try:
                body = await read_body(receive, self.limit, declared)
            except InputError as exc:
                return Answer(exc.status, _problem(error_key, str(exc)))
            served = self.registry.current
            if served is None:
                return Answer(503, _problem(error_key, "no model loaded yet"))
            if len(body) <= self.offload:
                return attempt(served, body)
            return await self._in_thread(attempt, served, body)
        finally:
            body = b""  # released before its bytes are handed back to the budget
            budget.give(reserved)

    async def _in_thread(
        self,
        attempt: Callable[[Served, bytes | bytearray], Answer],
        served: Served,
        body: bytes | bytearray,
    ) -> Answer:
        """Large bodies are decoded and scored off the event loop, a bounded number at once:
        decoding holds the GIL, so more threads would add memory, not throughput."""
        if self._workers is None:
            self._workers = asyncio.Semaphore(self._threads)
        async with self._workers:
            return await run_in_threadpool(attempt, served, body)


def _variant_query(query: bytes) -> tuple[str | None, bytes | None]:
    """The ``variant`` query parameter, or the 422 body FastAPI's validation would give."""
    variant = None
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key == "variant":
            variant = value
    if variant is not None and variant not in VARIANTS:
        allowed = " or ".join(repr(v) for v in VARIANTS)
        return None, _problem("detail", f"query.variant: Input should be {allowed}")
    return variant, None


class FastPaths:
    """Answers POST /predict and POST /v2/models/{name}/infer ahead of the framework.

    It sits in front of the whole application (see :class:`volatility.api.app.Api`): FastAPI's
    and Starlette's outer layers and the request-metrics wrapper cost a sixth of serving a row,
    so these requests are timed and counted here, with the same labels. Anything else goes to
    ``app``.
    """

    def __init__(self, app: ASGIApp, endpoints: ScoringEndpoints, metrics: ApiMetrics) -> None:
        self.app = app
        self.endpoints = endpoints
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path: str = scope["path"]
        version = None
        if path == PREDICT_PATH:
            route = PREDICT_PATH
        elif path.startswith(_V2_PREFIX) and path.endswith(_V2_SUFFIX):
            name = path[len(_V2_PREFIX) : -len(_V2_SUFFIX)]
            route = INFER_PATH
            if _VERSIONS in name:
                name, version = name.split(_VERSIONS, 1)
                route = INFER_VERSION_PATH
            if not name or "/" in name or (version is not None and (not version or "/" in version)):
                await self.app(scope, receive, send)
                return
        else:
            await self.app(scope, receive, send)
            return
        head = read_head(scope["headers"])
        status = 500  # what an unexpected error becomes
        try:
            if route == PREDICT_PATH:
                query: bytes = scope["query_string"]
                variant, problem = _variant_query(query) if query else (None, None)
                if problem is not None:
                    answer = Answer(422, problem)
                else:
                    answer = await self.endpoints.predict(head, receive, variant)
            else:
                answer = await self.endpoints.infer(name, version, head, receive)
            status = answer.status
            await send(
                {"type": "http.response.start", "status": status, "headers": answer.headers()}
            )
            await send({"type": "http.response.body", "body": answer.body})
        except ClientGone:
            return  # no answer, nothing to count
        finally:
            self.metrics.observe_request(route, "POST", status, time.perf_counter() - start)
