"""The two scoring endpoints (POST /predict and v2 infer), framework-free, plus an ASGI fast path.

FastAPI's per-request machinery (routing, dependency solving, response wrapping) costs several
times what decoding and scoring one row does. :class:`FastPaths` answers the two scoring routes
directly at the ASGI level; the FastAPI routes, which document them in OpenAPI, call the same
:class:`ScoringEndpoints`, so both paths give identical answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from volatility.api import openinference, predict
from volatility.api.decode import InputError, check_content_type
from volatility.api.jsonio import dumps
from volatility.api.metrics import ApiMetrics
from volatility.api.registry import ModelRegistry, NotLoaded, Served
from volatility.api.settings import ApiSettings
from volatility.names import VARIANTS

PREDICT_PATH: Final = "/predict"
INFER_PATH: Final = "/v2/models/{name}/infer"
_V2_PREFIX: Final = "/v2/models/"
_V2_SUFFIX: Final = "/infer"
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]


class ClientGone(Exception):
    """The client disconnected before sending its whole body: nothing to answer."""


async def read_body(receive: Receive, limit: int, declared: str | None) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InputError(413, f"{declared} bytes exceed the limit of {limit}", "body")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise InputError(413, f"more than {limit} bytes", "body")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _problem(key: str, detail: str) -> bytes:
    return dumps({key: detail})


class ScoringEndpoints:
    def __init__(self, settings: ApiSettings, registry: ModelRegistry, metrics: ApiMetrics) -> None:
        self.registry = registry
        self.metrics = metrics
        self.limit = settings.max_body_bytes
        self.max_rows = settings.max_batch_rows
        self.offload = settings.offload_body_bytes

    def _served(self) -> Served | None:
        return self.registry.current

    async def predict(
        self, content_type: str | None, length: str | None, receive: Receive, variant: str | None
    ) -> tuple[int, bytes]:
        """Status and JSON body for POST /predict; errors as {"detail": ...}."""
        return await self._score(
            "detail",
            content_type,
            length,
            receive,
            lambda served, body: predict.predict(
                served, body, variant, self.max_rows, self.metrics
            ),
        )

    async def infer(
        self, name: str, content_type: str | None, length: str | None, receive: Receive
    ) -> tuple[int, bytes]:
        """Status and JSON body for v2 infer; errors as {"error": ...} (the protocol's shape)."""
        return await self._score(
            "error",
            content_type,
            length,
            receive,
            lambda served, body: openinference.infer(
                served, name, body, self.max_rows, self.metrics
            ),
        )

    async def _score(
        self,
        error_key: str,
        content_type: str | None,
        length: str | None,
        receive: Receive,
        score: Callable[[Served, bytes], bytes],
    ) -> tuple[int, bytes]:
        try:
            check_content_type(content_type)
            body = await read_body(receive, self.limit, length)
            served = self.registry.current
            if served is None:
                return 503, _problem(error_key, "no model loaded yet")
            if len(body) > self.offload:
                return 200, await run_in_threadpool(score, served, body)
            return 200, score(served, body)
        except InputError as exc:
            return exc.status, _problem(error_key, str(exc))
        except NotLoaded as exc:
            return 404, _problem(error_key, str(exc))


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
    """ASGI middleware answering POST /predict and POST /v2/models/{name}/infer itself."""

    def __init__(self, app: ASGIApp, endpoints: ScoringEndpoints, routes: dict[str, Any]) -> None:
        self.app = app
        self.endpoints = endpoints
        # The FastAPI routes of the two paths, recorded in the scope for the metrics' route label.
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == PREDICT_PATH:
            route = PREDICT_PATH
        elif path.startswith(_V2_PREFIX) and path.endswith(_V2_SUFFIX):
            name = path[len(_V2_PREFIX) : -len(_V2_SUFFIX)]
            if not name or "/" in name:
                await self.app(scope, receive, send)
                return
            route = INFER_PATH
        else:
            await self.app(scope, receive, send)
            return
        content_type = length = None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"content-length":
                length = value.decode("latin-1")
        scope["route"] = self.routes.get(route)
        try:
            if route == PREDICT_PATH:
                query: bytes = scope["query_string"]
                variant, problem = _variant_query(query) if query else (None, None)
                if problem is not None:
                    status, body = 422, problem
                else:
                    status, body = await self.endpoints.predict(
                        content_type, length, receive, variant
                    )
            else:
                status, body = await self.endpoints.infer(name, content_type, length, receive)
        except ClientGone:
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
