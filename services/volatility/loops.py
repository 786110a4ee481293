"""Service loops: move messages between the bus and a stage, at least once, never crashing.

Each loop polls a batch, handles every message (unusable ones go to the dead-letter topic with
the reason in a header), publishes the outputs, waits for the bus to acknowledge them and only
then marks the batch done. A stop event ends the loop after the batch in hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from volatility import metrics
from volatility.bus import Bus, Message
from volatility.exchange.protocol import Frame
from volatility.features import FeatureVector
from volatility.messages import (
    MessageError,
    Prediction,
    decode_features,
    decode_tick,
    encode_features,
    encode_prediction,
    encode_tick,
)
from volatility.names import TOPIC_DEADLETTER, TOPIC_FEATURES, TOPIC_PREDICTIONS, TOPIC_TICKS
from volatility.runtime import Health
from volatility.stages import FeaturizeStage, ScoreStage, end_to_end_seconds
from volatility.ticks import Tick

log = logging.getLogger(__name__)

GROUP_FEATURIZER = "volatility-featurizer"
GROUP_CONSUMER = "volatility-consumer"


def dead_letter(bus: Bus, service: str, message: Message, reason: str, detail: str) -> None:
    metrics.MALFORMED.labels(service, reason).inc()
    metrics.DEADLETTERS.labels(service, reason).inc()
    bus.publish(
        TOPIC_DEADLETTER,
        message.key,
        message.value,
        headers=[
            ("reason", reason.encode()),
            ("detail", detail[:500].encode()),
            ("source_topic", message.topic.encode()),
            ("source_partition", str(message.partition).encode()),
            ("source_offset", str(message.offset).encode()),
            ("service", service.encode()),
        ],
    )


class TickPublisher:
    """Ingest: publishes every tick of every ticker frame, keyed by product."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    def publish(self, ticks: Sequence[Tick]) -> None:
        for tick in ticks:
            self._bus.publish(TOPIC_TICKS, tick.product_id, encode_tick(tick))
            metrics.TICKS.labels("ingest", tick.product_id).inc()
            metrics.LAST_EVENT_TIME.labels("ingest", tick.product_id).set(tick.event_time)

    def on_frame(self, frame: Frame) -> None:
        metrics.FRAMES.labels(frame.channel).inc()
        if frame.ticks:
            self.publish(frame.ticks)


def _run(
    bus: Bus,
    topic: str,
    group: str,
    service: str,
    handle: Callable[[Sequence[Message]], None],
    stop: threading.Event,
    health: Health,
    on_revoke: Callable[[Sequence[int]], None] | None,
    max_batch: int,
    poll_timeout: float,
) -> None:
    sub = bus.subscribe(topic, group, on_revoke=on_revoke)
    health.set_ready(True)
    try:
        while not stop.is_set():
            batch = sub.poll(max_batch, poll_timeout)
            health.beat()
            if not batch:
                continue
            started = time.perf_counter()
            handle(batch)
            pending = bus.flush(30.0)
            if pending:
                # Not acknowledged: leave the offsets unstored so the batch is read again.
                log.error(
                    "outputs not acknowledged; batch will be redelivered",
                    extra={"pending": pending},
                )
                continue
            sub.done(batch)
            metrics.PROCESSING_SECONDS.labels(service).observe(time.perf_counter() - started)
    finally:
        health.set_ready(False)
        bus.flush(30.0)
        sub.close()


def run_featurizer(
    bus: Bus,
    stop: threading.Event,
    health: Health,
    *,
    stage: FeaturizeStage | None = None,
    on_vector: Callable[[FeatureVector], None] | None = None,
    max_batch: int = 1000,
    poll_timeout: float = 0.5,
) -> None:
    stage = stage or FeaturizeStage()
    service = "featurizer"

    def revoke(partitions: Sequence[int]) -> None:
        for product in stage.revoke(partitions):
            metrics.HISTORY_RESTARTS.labels(product, "rebalance").inc()
        log.info(
            "partitions revoked; their windows warm up again",
            extra={"partitions": list(partitions)},
        )

    def handle(batch: Sequence[Message]) -> None:
        for msg in batch:
            try:
                tick = decode_tick(msg.value)
            except MessageError as exc:
                dead_letter(bus, service, msg, exc.reason, str(exc))
                continue
            metrics.TICKS.labels(service, tick.product_id).inc()
            for vec in stage.update(tick, msg.partition):
                bus.publish(TOPIC_FEATURES, vec.product_id, encode_features(vec))
                metrics.FEATURE_VECTORS.labels(vec.product_id).inc()
                if on_vector is not None:
                    on_vector(vec)

    _run(
        bus,
        TOPIC_TICKS,
        GROUP_FEATURIZER,
        service,
        handle,
        stop,
        health,
        revoke,
        max_batch,
        poll_timeout,
    )


def run_consumer(
    bus: Bus,
    stage: ScoreStage,
    stop: threading.Event,
    health: Health,
    *,
    on_prediction: Callable[[Prediction], None] | None = None,
    max_batch: int = 1000,
    poll_timeout: float = 0.5,
) -> None:
    service = "consumer"
    contract = stage.model.contract
    metrics.MODEL_INFO.labels(service, contract.variant, contract.version).set(1)

    def handle(batch: Sequence[Message]) -> None:
        vectors: list[FeatureVector] = []
        for msg in batch:
            try:
                vectors.append(decode_features(msg.value))
            except MessageError as exc:
                dead_letter(bus, service, msg, exc.reason, str(exc))
        for pred in stage.score(vectors):
            bus.publish(TOPIC_PREDICTIONS, pred.product_id, encode_prediction(pred))
            metrics.PREDICTIONS.labels(pred.product_id, pred.variant).inc()
            metrics.SCORE.labels(pred.variant).observe(pred.score)
            metrics.END_TO_END_SECONDS.labels(pred.variant).observe(end_to_end_seconds(pred))
            if pred.spike:
                metrics.SPIKES.labels(pred.product_id, pred.variant).inc()
            if on_prediction is not None:
                on_prediction(pred)

    _run(
        bus,
        TOPIC_FEATURES,
        GROUP_CONSUMER,
        service,
        handle,
        stop,
        health,
        None,
        max_batch,
        poll_timeout,
    )
