"""`volatility up`: the whole pipeline in one process, on the in-process bus.

Ingest, featurizer and consumer run as threads around a :class:`MemoryBus`, exactly the loops the
Kafka services run; the API serves on ``--port``; a live terminal view shows what flows. The tick
source is the live Coinbase feed, or, when it cannot be reached within a few seconds (or when
asked), the built-in exchange simulator; the choice is shown in the view and in ``/version``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from volatility.pacing import parse_speed
from volatility.ticks import DEFAULT_MAX_SKEW_SECONDS

if TYPE_CHECKING:
    from volatility.exchange.client import ExchangeClient
    from volatility.exchange.protocol import Frame
    from volatility.exchange.simulator.server import SimulatorHandle
    from volatility.features import FeatureVector
    from volatility.messages import Prediction
    from volatility.names import VariantName
    from volatility.recent import RecentPredictions

log = logging.getLogger(__name__)

Source = Literal["auto", "live", "simulator"]
LIVE_PROBE_SECONDS = 5.0
# A simulated feed starts with this much recent history, so the first predictions come within
# seconds instead of after the feature warm-up.
SIMULATOR_PREROLL_SECONDS = 75.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    parser.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1)")
    parser.add_argument(
        "--source",
        choices=("auto", "live", "simulator"),
        default="auto",
        help="auto (default): the live Coinbase feed, or the simulator when it is unreachable",
    )
    parser.add_argument(
        "--replay",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="replay recordings through the simulator instead",
    )
    parser.add_argument(
        "--speed", type=parse_speed, default=1.0, help="replay speed: 1, 10, ... or max (default 1)"
    )
    parser.add_argument("--seed", type=int, default=7, help="synthetic simulator seed (default 7)")
    parser.add_argument("--products", default="BTC-USD,ETH-USD", help="comma-separated products")
    parser.add_argument("--url", default=None, help="exchange WebSocket URL (default: Coinbase)")
    parser.add_argument(
        "--variant",
        choices=("baseline", "ml"),
        default=None,
        help="model variant (default: MODEL_VARIANT or baseline)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--no-view",
        action="store_true",
        help="print a JSON summary every few seconds instead of the live view",
    )


@dataclass
class LiveState:
    """What the view shows, updated by the pipeline's threads (guarded by a lock)."""

    source: str = ""
    source_detail: str = ""
    started: float = field(default_factory=time.monotonic)
    ticks: dict[str, int] = field(default_factory=dict)
    tick_times: dict[str, deque[float]] = field(default_factory=dict)
    last_price: dict[str, float] = field(default_factory=dict)
    vectors: dict[str, FeatureVector] = field(default_factory=dict)
    n_vectors: int = 0
    n_predictions: int = 0
    n_spikes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_frame(self, frame: Frame) -> None:
        now = time.monotonic()
        with self.lock:
            for tick in frame.ticks:
                p = tick.product_id
                self.ticks[p] = self.ticks.get(p, 0) + 1
                self.tick_times.setdefault(p, deque(maxlen=2000)).append(now)
                self.last_price[p] = tick.price

    def on_vector(self, vec: FeatureVector) -> None:
        with self.lock:
            self.vectors[vec.product_id] = vec
            self.n_vectors += 1

    def on_prediction(self, pred: Prediction) -> None:
        with self.lock:
            self.n_predictions += 1
            self.n_spikes += pred.spike

    def ticks_per_second(self, product: str, window: float = 10.0) -> float:
        now = time.monotonic()
        with self.lock:
            times = self.tick_times.get(product, deque())
            recent = sum(1 for t in times if now - t <= window)
        return recent / min(window, max(now - self.started, 1e-3))


def live_reachable(url: str, timeout: float = LIVE_PROBE_SECONDS) -> bool:
    """True when a WebSocket handshake with ``url`` succeeds within ``timeout``."""
    import websocket

    try:
        ws = websocket.create_connection(url, timeout=timeout)
    except (OSError, websocket.WebSocketException):
        return False
    ws.close()
    return True


class EmbeddedPipeline:
    """Ingest, featurizer, consumer and (optionally) the API, in threads of this process."""

    def __init__(
        self,
        *,
        url: str,
        products: tuple[str, ...],
        model_dir: Path,
        variant: VariantName,
        tick_source: str,
        state: LiveState | None = None,
        api_host: str = "127.0.0.1",
        api_port: int | None = 8000,
        on_prediction: Callable[[Prediction], object] | None = None,
        max_skew: float | None = DEFAULT_MAX_SKEW_SECONDS,
    ) -> None:
        """``max_skew`` bounds how far exchange timestamps may be from the wall clock (None: no
        bound, for simulated feeds whose clock runs at another speed or in the past)."""
        from volatility.bus.memory import MemoryBus
        from volatility.monitoring import ModelMonitor
        from volatility.names import VARIANTS
        from volatility.recent import RecentPredictions
        from volatility.runtime import Health
        from volatility.scoring.model import Model
        from volatility.stages import ScoreStage

        self.url = url
        self.products = products
        self.state = state or LiveState()
        self.bus = MemoryBus()
        self.stop_event = threading.Event()
        self.model = Model.load(model_dir, variant)
        self.stage = ScoreStage(self.model)
        # The other variant scores every vector too (shadow); both are followed live.
        self.shadow_model = Model.load(model_dir, next(v for v in VARIANTS if v != variant))
        self.monitor = ModelMonitor(self.model.contract, self.shadow_model.contract)
        self.recent: RecentPredictions = RecentPredictions()
        self.health = {name: Health() for name in ("ingest", "featurizer", "consumer")}
        self.tick_source = tick_source
        self.api_host, self.api_port = api_host, api_port
        self._on_prediction = on_prediction
        self.max_skew = max_skew
        self.client: ExchangeClient | None = None
        self._threads: list[threading.Thread] = []
        self._server: Any = None

    def start(self) -> None:
        from volatility.exchange.client import ClientConfig, ExchangeClient
        from volatility.feed_monitor import FeedMonitor
        from volatility.loops import TickPublisher, run_consumer, run_featurizer
        from volatility.stages import FeaturizeStage, ScoreStage

        publisher = TickPublisher(self.bus, products=self.products, max_skew=self.max_skew)

        def on_frame(frame: Frame) -> None:
            self.state.on_frame(frame)
            publisher.on_frame(frame)

        def on_prediction(pred: Prediction) -> None:
            self.recent.add(pred)
            self.state.on_prediction(pred)
            if self._on_prediction is not None:
                self._on_prediction(pred)

        self.client = ExchangeClient(ClientConfig(url=self.url, products=self.products))
        client = self.client
        # Subscribers first, so no tick is published before its consumers exist.
        self._spawn(
            "featurizer",
            run_featurizer,
            self.bus,
            self.stop_event,
            self.health["featurizer"],
            stage=FeaturizeStage(
                products=self.products,
                max_lead=self.max_skew,
                max_skew=self.max_skew or DEFAULT_MAX_SKEW_SECONDS,
            ),
            on_vector=self.state.on_vector,
            poll_timeout=0.2,
        )
        self._spawn(
            "consumer",
            run_consumer,
            self.bus,
            self.stage,
            self.stop_event,
            self.health["consumer"],
            on_prediction=on_prediction,
            poll_timeout=0.2,
            shadow=ScoreStage(self.shadow_model),
            monitor=self.monitor,
        )
        for health in (self.health["featurizer"], self.health["consumer"]):
            deadline = time.monotonic() + 10
            while not health.ready and time.monotonic() < deadline:
                self.stop_event.wait(0.01)
        self._spawn("ingest", client.run, self.stop_event, on_frame)
        self._spawn("feed-monitor", FeedMonitor(client, self.health["ingest"]).run, self.stop_event)
        if self.api_port is not None:
            self._start_api()

    def _spawn(self, name: str, target: Any, *args: Any, **kwargs: Any) -> None:
        t = threading.Thread(target=target, args=args, kwargs=kwargs, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _start_api(self) -> None:
        import uvicorn

        from volatility.api.app import create_app
        from volatility.api.settings import ApiSettings
        from volatility.settings import ModelSettings

        app = create_app(
            ApiSettings(
                models=ModelSettings(
                    dir=self.model.info.path.parent.parent, variant=self.model.contract.variant
                )
            ),
            tick_source=self.tick_source,
            bus=self.bus,
        )
        config = uvicorn.Config(
            app, host=self.api_host, port=self.api_port or 0, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._spawn("api", self._server.run)
        deadline = time.monotonic() + 15
        while not self._server.started and time.monotonic() < deadline:
            self.stop_event.wait(0.05)
        if not self._server.started:
            raise RuntimeError(f"the API did not start on {self.api_host}:{self.api_port}")

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self._server is not None:
            self._server.should_exit = True
        for t in self._threads:
            t.join(timeout)
        self.bus.close()


def _start_simulator(args: argparse.Namespace, products: tuple[str, ...]) -> SimulatorHandle:
    from volatility.exchange.simulator.server import start_simulator
    from volatility.exchange.simulator.sources import replay_source, synthetic_source

    if args.replay:
        source = replay_source(args.replay, products=products)
        return start_simulator(source, speed=args.speed, timestamps="shift")
    source = synthetic_source(
        args.seed, products, start_time=time.time() - SIMULATOR_PREROLL_SECONDS
    )
    return start_simulator(source, speed=1.0, timestamps="keep", preroll=SIMULATOR_PREROLL_SECONDS)


def run(args: argparse.Namespace) -> int:
    from volatility.names import COINBASE_WS_URL
    from volatility.runtime import configure_logging, install_signal_handlers
    from volatility.settings import ModelSettings, RuntimeSettings

    configure_logging(RuntimeSettings(log_format="text", log_level="WARNING"), "up")
    products = tuple(p.strip() for p in args.products.split(",") if p.strip())
    state = LiveState()
    simulator = None
    url = args.url or COINBASE_WS_URL
    source: str = "replay" if args.replay else args.source
    if source == "auto":
        if live_reachable(url):
            source, state.source_detail = "live", url
        else:
            source = "simulator"
            state.source_detail = (
                f"{url} unreachable within {LIVE_PROBE_SECONDS:.0f} s: SIMULATED TICKS"
            )
    if source in ("simulator", "replay"):
        simulator = _start_simulator(args, products)
        url = simulator.url
        if not state.source_detail:
            state.source_detail = f"{simulator.source.name} at {url}"
    elif not state.source_detail:
        state.source_detail = url
    state.source = source
    models = ModelSettings()
    pipeline = EmbeddedPipeline(
        url=url,
        products=products,
        model_dir=models.dir,
        variant=args.variant or models.variant,
        tick_source=f"{source}: {state.source_detail}",
        state=state,
        api_host=args.host,
        api_port=args.port,
        # A simulated clock may run faster than the wall clock or in the past.
        max_skew=DEFAULT_MAX_SKEW_SECONDS if source == "live" else None,
    )
    stop = install_signal_handlers()
    pipeline.start()
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        if args.no_view or not sys.stdout.isatty():
            _summaries(pipeline, stop, deadline)
        else:
            from volatility.view import run_view

            run_view(pipeline, stop, deadline, api=f"http://{args.host}:{args.port}")
    finally:
        pipeline.stop()
        if simulator is not None:
            simulator.stop()
    return 0


def summary(pipeline: EmbeddedPipeline) -> dict[str, Any]:
    s = pipeline.state
    with s.lock:
        out: dict[str, Any] = {
            "source": s.source,
            "detail": s.source_detail,
            "ticks": dict(s.ticks),
            "feature_vectors": s.n_vectors,
            "predictions": s.n_predictions,
            "spikes": s.n_spikes,
        }
    out["latest"] = {p: pred.as_dict() for p, pred in pipeline.recent.latest().items()}
    return out


def _summaries(pipeline: EmbeddedPipeline, stop: threading.Event, deadline: float | None) -> None:
    while not stop.is_set():
        wait = 5.0 if deadline is None else min(5.0, max(deadline - time.monotonic(), 0))
        stop.wait(wait)
        print(json.dumps(summary(pipeline)), flush=True)  # noqa: T201 - the command's output
        if deadline is not None and time.monotonic() >= deadline:
            return
