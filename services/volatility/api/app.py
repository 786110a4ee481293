"""The FastAPI application: ``create_app`` wires settings, models, routes and metrics."""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from volatility import __version__
from volatility.api import openinference
from volatility.api.metrics import ApiMetrics, api_metrics
from volatility.api.middleware import RequestMetrics
from volatility.api.openinference import pick_version
from volatility.api.predictions import PredictionFeed, PredictionReader, process_group
from volatility.api.registry import ModelRegistry, NotLoaded
from volatility.api.schemas import (
    ErrorBody,
    Health,
    LatestPredictions,
    LoadedModel,
    PredictBatch,
    PredictOne,
    Readiness,
    V2Error,
    V2InferRequest,
    V2InferResponse,
    V2Live,
    V2ModelMetadata,
    V2ModelReady,
    V2Ready,
    V2ServerMetadata,
    VersionInfo,
    predict_request_schemas,
)
from volatility.api.scoring_routes import (
    INFER_PATH,
    INFER_VERSION_PATH,
    PREDICT_PATH,
    Answer,
    FastPaths,
    ScoringEndpoints,
    read_head,
)
from volatility.api.settings import ApiSettings
from volatility.api.stream import EventStreamResponse, event_stream, prediction_out
from volatility.api.watch import VariantFile, read_variant, reload_models, watch_variant_file
from volatility.bus.base import Bus
from volatility.features.spec import FEATURE_NAMES, FEATURE_SPEC_VERSION
from volatility.names import VariantName
from volatility.runtime import tune_gc
from volatility.scoring.contract import ModelContractError

log = logging.getLogger(__name__)

JSON = "application/json"
ModelName = Annotated[str, Path(description="A variant: baseline or ml")]
ModelVersion = Annotated[str, Path(description="The version the model's metadata lists")]
V2_PATHS = "/v2"
SERVER_NAME = "volatility"
# The Open Inference Protocol extension this server implements (named as Triton names it).
BINARY_EXTENSION = "binary_tensor_data"


@dataclass
class ApiState:
    """What the routes share; kept on ``app.state.api``."""

    settings: ApiSettings
    registry: ModelRegistry
    metrics: ApiMetrics
    tick_source: str
    # The pipeline's predictions: a bus handed in (embedded), or Kafka when so configured.
    bus: Bus | None
    feed: PredictionFeed | None
    endpoints: ScoringEndpoints
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


def api_state(app: FastAPI) -> ApiState:
    state: ApiState = app.state.api
    return state


def _answer(answer: Answer) -> Response:
    response = Response(answer.body, status_code=answer.status, media_type=answer.content_type)
    if answer.json_length is not None:
        response.headers["inference-header-content-length"] = str(answer.json_length)
    return response


def _problem(status: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status)


def _v2_problem(status: int, detail: str) -> Response:
    return JSONResponse({"error": detail}, status_code=status)


def _lifespan(state: ApiState) -> Callable[[FastAPI], Any]:
    settings = state.settings

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Note the file's identity before reading it: a change from here on is seen by the watcher.
        watcher = VariantFile(settings.variant_file) if settings.variant_file else None
        chosen = read_variant(settings.variant_file) if settings.variant_file else None
        active = chosen or settings.models.variant
        # Start-up fails (and the process exits) if the active variant cannot be served.
        await asyncio.to_thread(state.registry.load, active)
        if settings.tune_gc:
            tune_gc()
        if watcher is not None:
            state.tasks.add(
                asyncio.create_task(
                    watch_variant_file(state.registry, watcher, settings.variant_poll_seconds)
                )
            )

        def on_sighup() -> None:
            log.info("SIGHUP: reloading models")
            task = asyncio.create_task(
                asyncio.to_thread(reload_models, state.registry, settings.variant_file)
            )
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)

        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, on_sighup)
            hooked = True
        except (ValueError, RuntimeError, NotImplementedError):
            hooked = False  # not the main thread (in-process tests): no signal handling
        if state.feed is not None:
            state.feed.attach(loop)
        reading = _start_reader(state)
        try:
            yield
        finally:
            if reading is not None:
                reader, bus = reading
                await asyncio.to_thread(reader.stop)
                if bus is not state.bus:
                    bus.close()  # the reader's own client
            if state.feed is not None:
                state.feed.attach(None)
            if hooked:
                loop.remove_signal_handler(signal.SIGHUP)
            for task in state.tasks:
                task.cancel()
            for task in list(state.tasks):
                with suppress(asyncio.CancelledError):
                    await task
            state.tasks.clear()

    return lifespan


NO_FEED = (
    "this process reads no prediction stream: run it with API_PREDICTIONS_SOURCE=kafka "
    "(the chart does), or embedded in the pipeline (volatility up)"
)


def _prediction_feed(
    settings: ApiSettings, metrics: ApiMetrics, bus: Bus | None
) -> PredictionFeed | None:
    from volatility.settings import TopicSettings

    if bus is not None:
        source = "in-process"
    elif settings.predictions_source == "kafka":
        from volatility.settings import KafkaSettings

        source = f"kafka {KafkaSettings().bootstrap_servers} {TopicSettings().topic_predictions}"
    else:
        return None
    return PredictionFeed(source, settings.stream_max_age_seconds, metrics.observe_read)


def _start_reader(state: ApiState) -> tuple[PredictionReader, Bus] | None:
    """The predictions reader, on the bus handed in or on a Kafka client of its own."""
    from volatility.settings import TopicSettings

    if state.feed is None:
        return None
    bus = state.bus
    if bus is None:
        from volatility.bus.kafka import KafkaBus
        from volatility.settings import KafkaSettings

        bus = KafkaBus(KafkaSettings(), service="api")
    group = process_group(state.settings.predictions_group)
    reader = PredictionReader(bus, TopicSettings().topic_predictions, group, state.feed)
    reader.start()
    return reader, bus


def _without_otel() -> dict[str, Any]:
    """Turn off FastAPI's built-in OpenTelemetry where it has it: its per-request check of
    whether a provider is configured costs more than scoring a row, and metrics are Prometheus."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    off = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    return {"telemetry": off}


class Api(FastAPI):
    """The application; with ``fast_paths`` set, the scoring requests are answered by it ahead
    of the framework's layers, and every other request goes through them."""

    fast_paths: FastPaths | None = None

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_paths
        if fast is not None:
            await fast(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(
    settings: ApiSettings | None = None,
    *,
    tick_source: str = "none",
    bus: Bus | None = None,
) -> FastAPI:
    """The API; models are loaded when the application starts (its lifespan), not here."""
    settings = settings or ApiSettings()
    metrics = api_metrics()
    registry = ModelRegistry(
        settings.models.dir, threads=settings.onnx_threads, on_change=metrics.publish_models
    )
    endpoints = ScoringEndpoints(settings, registry, metrics)
    feed = _prediction_feed(settings, metrics, bus)
    state = ApiState(settings, registry, metrics, tick_source, bus, feed, endpoints)
    app = Api(
        title="volatility",
        version=__version__,
        description="Scores crypto market feature vectors for short-horizon volatility spikes.",
        lifespan=_lifespan(state),
        **_without_otel(),
    )
    app.state.api = state
    _add_error_handlers(app)
    _add_service_routes(app, state)
    _add_predict_route(app, state)
    _add_v2_routes(app, state)
    if settings.fast_path:
        app.fast_paths = FastPaths(app.framework, endpoints, metrics)
    app.add_middleware(RequestMetrics, metrics=metrics)  # added last: the outermost
    _document_predict_body(app, settings.max_batch_rows)
    return app


def _is_v2(request: Request) -> bool:
    path: str = request.scope["path"]
    return path == V2_PATHS or path.startswith(V2_PATHS + "/")


def _add_error_handlers(app: FastAPI) -> None:
    """Errors in each protocol's shape: {"error": ...} under /v2, {"detail": ...} elsewhere."""

    async def on_validation(request: Request, exc: Exception) -> Response:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        parts = []
        for err in errors:
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        text = "; ".join(parts) or "invalid request"
        return _v2_problem(422, text) if _is_v2(request) else _problem(422, text)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it alone
        method, path = request.scope["method"], request.scope["path"]
        if exc.status_code == 404:
            text = f"no such route: {path}"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            text = f"{method} is not allowed on {path}" + (
                f"; allowed: {allowed}" if allowed else ""
            )
        else:
            text = str(exc.detail)
        response = (
            _v2_problem(exc.status_code, text)
            if _is_v2(request)
            else _problem(exc.status_code, text)
        )
        response.headers.update(exc.headers or {})
        return response

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def _add_service_routes(app: FastAPI, state: ApiState) -> None:
    @app.get("/health", response_model=Health, tags=["service"])
    async def health() -> Health:
        """The process is alive."""
        return Health()

    @app.get(
        "/ready",
        response_model=Readiness,
        responses={503: {"model": Readiness}},
        tags=["service"],
    )
    async def ready() -> Response:
        """A model is loaded and its feature contract matches this build's feature spec."""
        served = state.registry.current
        if served is None:
            body = Readiness(ready=False, detail="no model loaded yet")
            return JSONResponse(body.model_dump(), status_code=503)
        try:
            served.model.contract.check_features()
        except ModelContractError as exc:
            body = Readiness(ready=False, variant=served.active, detail=str(exc))
            return JSONResponse(body.model_dump(), status_code=503)
        return JSONResponse(Readiness(ready=True, variant=served.active).model_dump())

    @app.get(
        "/version",
        response_model=VersionInfo,
        responses={503: {"model": ErrorBody}},
        tags=["service"],
    )
    async def version() -> VersionInfo | Response:
        """The active model, every loaded one, the feature contract and the build."""
        served = state.registry.current
        if served is None:
            return _problem(503, "no model loaded yet")
        model = served.model
        return VersionInfo(
            variant=served.active,
            model_version=model.contract.version,
            model_sha256=model.info.sha256,
            threshold=model.contract.threshold,
            feature_names=list(FEATURE_NAMES),
            feature_spec_version=FEATURE_SPEC_VERSION,
            tick_source=state.tick_source,
            package_version=__version__,
            build_revision=state.settings.build_revision,
            loaded={
                v: LoadedModel(
                    version=m.contract.version, sha256=m.info.sha256, threshold=m.contract.threshold
                )
                for v, m in served.models.items()
            },
        )

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
        tags=["service"],
    )
    async def prometheus() -> Response:
        """Prometheus exposition of this process's metrics."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/predictions/latest",
        response_model=LatestPredictions,
        responses={404: {"model": ErrorBody}},
        tags=["predictions"],
    )
    async def latest() -> LatestPredictions | Response:
        """The latest prediction of the pipeline per product, with its age."""
        feed = state.feed
        if feed is None:
            return _problem(404, NO_FEED)
        now = time.time()
        seen = feed.latest()
        received = feed.last_received
        return LatestPredictions(
            source=feed.source,
            last_received_seconds_ago=None if received is None else round(now - received, 3),
            predictions=[prediction_out(seen[p].prediction, now) for p in sorted(seen)],
        )

    @app.get(
        "/predictions/stream",
        response_model=None,
        responses={
            200: {
                "description": "Server-Sent Events: `latest` events (the latest prediction per "
                "product) on connecting, then a `prediction` event per new prediction (its "
                "`spike` field flags spikes), and a comment line when idle",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            404: {"model": ErrorBody, "description": "This process reads no predictions"},
            422: {"model": ErrorBody, "description": "Invalid query; the message names it"},
            503: {"model": ErrorBody, "description": "Too many stream clients"},
        },
        tags=["predictions"],
    )
    async def stream(
        product: Annotated[str | None, Query(description="Only this product")] = None,
        spikes: Annotated[bool, Query(description="Only predictions flagged as spikes")] = False,
    ) -> Response:
        """Follow the pipeline's predictions live (e.g. ``curl -N .../predictions/stream``)."""
        feed = state.feed
        if feed is None:
            return _problem(404, NO_FEED)
        if feed.listeners >= state.settings.stream_max_clients:
            limit = state.settings.stream_max_clients
            return _problem(503, f"{limit} clients already follow the stream; retry later")
        events = event_stream(
            feed,
            state.metrics,
            product=product,
            spikes_only=spikes,
            keepalive=state.settings.stream_keepalive_seconds,
        )
        # No caching, and no buffering by a proxy (nginx honours X-Accel-Buffering).
        return EventStreamResponse(
            events, headers={"cache-control": "no-cache", "x-accel-buffering": "no"}
        )


_PREDICT_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "The requested variant is not loaded"},
    413: {"model": ErrorBody, "description": "Too many rows or too large a body"},
    415: {"model": ErrorBody, "description": "Not a JSON body"},
    422: {"model": ErrorBody, "description": "Invalid input; the message names the field"},
    503: {"model": ErrorBody, "description": "No model loaded yet"},
}


def _add_predict_route(app: FastAPI, state: ApiState) -> None:
    @app.post(
        PREDICT_PATH,
        response_model=None,
        responses={
            200: {
                "description": "Scores at the model's operating threshold",
                "content": {
                    JSON: {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/PredictOne"},
                                {"$ref": "#/components/schemas/PredictBatch"},
                            ]
                        }
                    }
                },
            },
            **_PREDICT_ERRORS,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
            }
        },
        tags=["predictions"],
    )
    async def predict_route(
        request: Request,
        variant: Annotated[
            VariantName | None,
            Query(description="Score with this loaded variant, not the active one"),
        ] = None,
    ) -> Response:
        """Score one feature vector (``features``) or a batch (``instances``, or ``rows``)."""
        answer = await state.endpoints.predict(
            read_head(request.scope["headers"]), request.receive, variant
        )
        return _answer(answer)


def _add_v2_routes(app: FastAPI, state: ApiState) -> None:
    not_found: dict[int | str, dict[str, Any]] = {
        404: {"model": V2Error, "description": "No such model"}
    }

    @app.get("/v2", response_model=V2ServerMetadata, tags=["v2"])
    async def server_metadata() -> V2ServerMetadata:
        return V2ServerMetadata(
            name=SERVER_NAME, version=__version__, extensions=[BINARY_EXTENSION]
        )

    @app.get("/v2/health/live", response_model=V2Live, tags=["v2"])
    async def live() -> V2Live:
        return V2Live(live=True)

    @app.get(
        "/v2/health/ready", response_model=V2Ready, responses={503: {"model": V2Ready}}, tags=["v2"]
    )
    async def server_ready() -> Response:
        ok = state.registry.current is not None
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    def model_or_404(name: str, version: str | None = None) -> Any:
        served = state.registry.current
        if served is None:
            return _v2_problem(503, "no model loaded yet")
        try:
            return pick_version(served, name, version)
        except NotLoaded as exc:
            return _v2_problem(404, str(exc))

    v2_errors: dict[int | str, dict[str, Any]] = {**not_found, 503: {"model": V2Error}}

    @app.get("/v2/models/{name}", response_model=V2ModelMetadata, responses=v2_errors, tags=["v2"])
    async def model_metadata(name: ModelName) -> V2ModelMetadata | Response:
        model = model_or_404(name)
        if isinstance(model, Response):
            return model
        return openinference.model_metadata(name, model)

    @app.get(
        "/v2/models/{name}/versions/{version}",
        response_model=V2ModelMetadata,
        responses=v2_errors,
        tags=["v2"],
    )
    async def model_version_metadata(
        name: ModelName, version: ModelVersion
    ) -> V2ModelMetadata | Response:
        model = model_or_404(name, version)
        if isinstance(model, Response):
            return model
        return openinference.model_metadata(name, model)

    @app.get(
        "/v2/models/{name}/ready", response_model=V2ModelReady, responses=v2_errors, tags=["v2"]
    )
    async def model_ready(name: ModelName) -> V2ModelReady | Response:
        model = model_or_404(name)
        if isinstance(model, Response):
            return model
        return V2ModelReady(name=name, ready=True)

    @app.get(
        "/v2/models/{name}/versions/{version}/ready",
        response_model=V2ModelReady,
        responses=v2_errors,
        tags=["v2"],
    )
    async def model_version_ready(
        name: ModelName, version: ModelVersion
    ) -> V2ModelReady | Response:
        model = model_or_404(name, version)
        if isinstance(model, Response):
            return model
        return V2ModelReady(name=name, ready=True)

    infer_doc: dict[str, Any] = {
        "response_model": None,
        "responses": {
            200: {
                "model": V2InferResponse,
                "description": "Probabilities [n, 2]; column 1: spike. With the binary tensor "
                "extension (Inference-Header-Content-Length), application/octet-stream: the JSON "
                "header, then the FP32 data of outputs sent in binary",
            },
            **not_found,
            400: {"model": V2Error, "description": "Malformed headers"},
            413: {"model": V2Error, "description": "Too many rows or too large a body"},
            415: {"model": V2Error, "description": "Not a JSON body"},
            422: {"model": V2Error, "description": "Invalid input; the message names the field"},
            503: {"model": V2Error, "description": "No model loaded yet"},
        },
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": {"$ref": "#/components/schemas/V2InferRequest"}}},
            }
        },
        "tags": ["v2"],
    }

    @app.post(INFER_PATH, **infer_doc)
    async def infer(request: Request, name: ModelName) -> Response:
        head = read_head(request.scope["headers"])
        return _answer(await state.endpoints.infer(name, None, head, request.receive))

    @app.post(INFER_VERSION_PATH, **infer_doc)
    async def infer_version(request: Request, name: ModelName, version: ModelVersion) -> Response:
        head = read_head(request.scope["headers"])
        return _answer(await state.endpoints.infer(name, version, head, request.receive))


def _document_predict_body(app: FastAPI, max_rows: int) -> None:
    """Add the hand-written request schemas (the routes decode bodies without pydantic)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(predict_request_schemas(max_rows))
            for model in (PredictOne, PredictBatch, V2InferRequest):
                extra = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(extra.pop("$defs", {}))
                components[model.__name__] = extra
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
