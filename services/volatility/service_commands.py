"""The Kafka-mode services (`ingest`, `featurize`, `consume`), `replay` and `kafka init`.

Each command builds its settings from the environment, configures JSON logs, installs signal
handlers, serves /metrics, /healthz and /readyz on METRICS_PORT, and runs its loop until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from volatility import __version__
from volatility.pacing import parse_speed

if TYPE_CHECKING:
    from volatility.bus.kafka import KafkaBus
    from volatility.runtime import Health
    from volatility.ticks import Tick

log = logging.getLogger(__name__)

_ENV_NOTE = (
    "Kafka settings come from KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL, "
    "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD; topic and group names "
    "from KAFKA_TOPIC_TICKS, KAFKA_TOPIC_FEATURES, KAFKA_TOPIC_PREDICTIONS, "
    "KAFKA_TOPIC_DEADLETTER, KAFKA_GROUP_FEATURIZER and KAFKA_GROUP_CONSUMER; logging from "
    "LOG_LEVEL and LOG_FORMAT (json|text); health and metrics are served on METRICS_PORT."
)
_CONSUMER_NOTE = (
    "Consumption: KAFKA_CONSUMER_SESSION_TIMEOUT_MS, KAFKA_CONSUMER_GROUP_INSTANCE_ID, "
    "KAFKA_CONSUMER_MAX_BATCH, KAFKA_CONSUMER_POLL_TIMEOUT_SECONDS, "
    "KAFKA_CONSUMER_LAG_INTERVAL_SECONDS."
)


def _common(parser: argparse.ArgumentParser, extra: str = "") -> None:
    parser.epilog = " ".join(s for s in (_ENV_NOTE, extra) if s)


def add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    _common(
        parser,
        "Exchange settings: INGEST_WS_URL, INGEST_PRODUCTS (comma-separated), "
        "INGEST_STALE_AFTER_SECONDS, INGEST_MAX_SKEW_SECONDS (frames stamped further from their "
        "receive time are dead-lettered) and INGEST_WATERMARK_LAG_SECONDS (how far the "
        "watermarks trail the exchange's clock).",
    )


def add_featurize_arguments(parser: argparse.ArgumentParser) -> None:
    _common(
        parser,
        _CONSUMER_NOTE + " Windows: FEATURIZER_PRODUCTS (comma-separated; other products are "
        "dead-lettered), FEATURIZER_MAX_SKEW_SECONDS (how far ahead of its product's stream or "
        "its ingest time a record may be) and FEATURIZER_REBUILD_SECONDS (event time re-read "
        "to rebuild state after a restart or rebalance).",
    )


def add_consume_arguments(parser: argparse.ArgumentParser) -> None:
    _common(
        parser,
        _CONSUMER_NOTE + " The model comes from MODEL_VARIANT (baseline|ml) and MODEL_DIR; "
        "CONSUMER_PRODUCTS (comma-separated) are scored, other products are dead-lettered.",
    )


def _start(service: str) -> tuple[threading.Event, Health]:
    from volatility.runtime import (
        Health,
        configure_logging,
        install_signal_handlers,
        serve_health_and_metrics,
    )
    from volatility.settings import RuntimeSettings

    runtime = RuntimeSettings()
    configure_logging(runtime, service)
    stop = install_signal_handlers()
    health = Health()
    health.describe(service=service, package_version=__version__)
    serve_health_and_metrics(runtime.metrics_port, health)
    return stop, health


def _kafka_bus(topics: tuple[str, ...], service: str) -> KafkaBus:
    """A bus to a reachable broker holding ``topics`` (created first with KAFKA_CREATE_TOPICS);
    raises BusUnavailableError otherwise."""
    from volatility.bus.kafka import KafkaBus
    from volatility.settings import KafkaConsumerSettings, KafkaSettings

    settings = KafkaSettings()
    if settings.create_topics:
        from volatility.bus.admin import create_topics
        from volatility.settings import TopicSettings

        create_topics(settings, topics=TopicSettings().all_topics)
    bus = KafkaBus(settings, consumer_settings=KafkaConsumerSettings(), service=service)
    bus.check_topics(topics)
    return bus


def run_ingest(args: argparse.Namespace) -> int:
    from volatility.bus.kafka import BusUnavailableError
    from volatility.exchange.client import ClientConfig, ExchangeClient
    from volatility.feed_monitor import FeedMonitor
    from volatility.loops import TickPublisher
    from volatility.runtime import tune_gc
    from volatility.settings import IngestSettings, TopicSettings

    stop, health = _start("ingest")
    settings = IngestSettings()
    topics = TopicSettings()
    try:
        bus = _kafka_bus((topics.topic_ticks, topics.topic_deadletter), "ingest")
    except BusUnavailableError as exc:
        log.error(str(exc))
        return 2
    publisher = TickPublisher(
        bus,
        topics.topic_ticks,
        products=settings.products,
        lag=settings.watermark_lag_seconds,
        max_skew=settings.max_skew_seconds,
        deadletter=topics.topic_deadletter,
    )
    client = ExchangeClient(
        ClientConfig(
            url=settings.ws_url,
            products=settings.products,
            stale_after=settings.stale_after_seconds,
        )
    )
    health.set_ready(True)  # the bus is reachable; the exchange's state is a metric
    monitor = FeedMonitor(client, health)
    watcher = threading.Thread(target=monitor.run, args=(stop,), name="feed-monitor", daemon=True)
    watcher.start()
    tune_gc()
    try:
        client.run(stop, publisher.on_frame)
    finally:
        stop.set()
        watcher.join(10)
        bus.close()
    return 0


def run_featurize(args: argparse.Namespace) -> int:
    from volatility.bus.kafka import BusUnavailableError
    from volatility.loops import run_featurizer
    from volatility.runtime import tune_gc
    from volatility.settings import FeaturizerSettings, KafkaConsumerSettings, TopicSettings
    from volatility.stages import FeaturizeStage

    stop, health = _start("featurizer")
    topics, loop, settings = TopicSettings(), KafkaConsumerSettings(), FeaturizerSettings()
    try:
        bus = _kafka_bus(
            (topics.topic_ticks, topics.topic_features, topics.topic_deadletter), "featurizer"
        )
        stage = FeaturizeStage(
            products=settings.products,
            max_skew=settings.max_skew_seconds,
            max_lead=settings.max_skew_seconds,
            rebuild_seconds=settings.rebuild_seconds,
        )
        tune_gc()
        run_featurizer(
            bus,
            stop,
            health,
            stage=stage,
            topics=topics,
            max_batch=loop.max_batch,
            poll_timeout=loop.poll_timeout_seconds,
            lag_interval=loop.lag_interval_seconds,
        )
    except BusUnavailableError as exc:
        log.error(str(exc))
        return 2
    return 0


def run_consume(args: argparse.Namespace) -> int:
    from volatility.bus.kafka import BusUnavailableError
    from volatility.loops import run_consumer
    from volatility.monitoring import ModelMonitor
    from volatility.names import VARIANTS
    from volatility.runtime import tune_gc
    from volatility.scoring.contract import ModelContractError
    from volatility.scoring.model import Model
    from volatility.settings import (
        ConsumerSettings,
        KafkaConsumerSettings,
        ModelSettings,
        TopicSettings,
    )
    from volatility.stages import ScoreStage

    stop, health = _start("consumer")
    settings = ModelSettings()
    topics, loop = TopicSettings(), KafkaConsumerSettings()
    try:
        model = Model.load(settings.dir, settings.variant)
    except (FileNotFoundError, ModelContractError) as exc:
        log.error(str(exc))
        return 2
    log.info(
        "model loaded", extra={"variant": model.contract.variant, "version": model.contract.version}
    )
    shadow = None
    if settings.shadow:
        other = next(v for v in VARIANTS if v != settings.variant)
        try:
            shadow = Model.load(settings.dir, other)
        except (FileNotFoundError, ModelContractError) as exc:
            log.error(f"shadow model: {exc} (set MODEL_SHADOW=false to run without it)")
            return 2
    monitor = ModelMonitor(model.contract, shadow.contract if shadow else None)
    # What GET /version answers (the operator asks it to learn what this pod serves).
    health.describe(
        variant=model.contract.variant,
        model_version=model.contract.version,
        model_sha256=model.info.sha256,
        threshold=model.contract.threshold,
        shadow_variant=shadow.contract.variant if shadow else None,
    )
    try:
        bus = _kafka_bus(
            (topics.topic_features, topics.topic_predictions, topics.topic_deadletter), "consumer"
        )
        tune_gc()
        run_consumer(
            bus,
            ScoreStage(model),
            stop,
            health,
            topics=topics,
            max_batch=loop.max_batch,
            poll_timeout=loop.poll_timeout_seconds,
            lag_interval=loop.lag_interval_seconds,
            shadow=ScoreStage(shadow) if shadow else None,
            monitor=monitor,
            products=frozenset(ConsumerSettings().products),
        )
    except BusUnavailableError as exc:
        log.error(str(exc))
        return 2
    return 0


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="NDJSON recordings or captures")
    parser.add_argument(
        "--to-kafka",
        action="store_true",
        help="publish the ticks, and the watermarks their clock implies, to the ticks topic "
        "(KAFKA_* settings); default: tick JSON lines on stdout",
    )
    parser.add_argument(
        "--speed",
        type=parse_speed,
        default=None,
        help="event-time speed: 1, 10, ... or max (default)",
    )
    _common(parser)


def run_replay(args: argparse.Namespace) -> int:
    from volatility.exchange.recordings import iter_ticks
    from volatility.messages import encode_tick
    from volatility.pacing import Pacer

    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        print(f"no such file: {', '.join(missing)}", file=sys.stderr)  # noqa: T201
        return 2
    stop = threading.Event()
    if args.to_kafka:
        from volatility.bus.kafka import BusUnavailableError
        from volatility.loops import TickPublisher
        from volatility.runtime import install_signal_handlers
        from volatility.settings import TopicSettings

        stop = install_signal_handlers()
        topic = TopicSettings().topic_ticks
        try:
            bus = _kafka_bus((topic,), "replay")
        except BusUnavailableError as exc:
            print(str(exc), file=sys.stderr)  # noqa: T201
            return 2
        publisher = TickPublisher(bus, topic)
    pacer = Pacer(args.speed, stop)
    count = 0
    out = sys.stdout.buffer
    pending: list[Tick] = []
    for tick in iter_ticks(args.files):
        if not pacer.wait_for(tick.event_time):
            break
        if args.to_kafka:
            # Paced ticks go out one by one, as the exchange delivers them; at max speed they
            # are published in blocks, which is what makes a max-speed replay fast.
            pending.append(tick)
            if args.speed is not None or len(pending) >= 1000:
                publisher.publish(pending)
                pending = []
        else:
            out.write(encode_tick(tick) + b"\n")
        count += 1
    if args.to_kafka:
        if pending:
            publisher.publish(pending)
        unacknowledged = bus.flush(60.0)
        report = {"published": count, "unacknowledged": unacknowledged}
        print(json.dumps(report), file=sys.stderr)  # noqa: T201
        return 1 if unacknowledged or bus.delivery_errors else 0
    out.flush()
    return 0


def add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kafka_command", required=True, metavar="ACTION")
    init = sub.add_parser(
        "init",
        help="create the pipeline's topics (idempotent)",
        description="Create the pipeline's topics; existing ones are left as they are.",
    )
    init.epilog = _ENV_NOTE + (
        " Partitions, replication and retention come from "
        "KAFKA_TOPIC_PARTITIONS, KAFKA_TOPIC_REPLICATION_FACTOR and KAFKA_TOPIC_RETENTION_MS."
    )
    init.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the broker")


def run_kafka(args: argparse.Namespace) -> int:
    from volatility.bus.admin import create_topics
    from volatility.bus.kafka import BusUnavailableError
    from volatility.runtime import configure_logging
    from volatility.settings import KafkaSettings, RuntimeSettings, TopicSettings

    configure_logging(RuntimeSettings(), "kafka-init")
    try:
        create_topics(KafkaSettings(), timeout=args.timeout, topics=TopicSettings().all_topics)
    except (BusUnavailableError, TimeoutError) as exc:
        log.error(str(exc))
        return 2
    return 0
