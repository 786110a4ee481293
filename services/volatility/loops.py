"""Service loops: move messages between the bus and a stage, at least once, never crashing.

Each loop polls a batch, handles every message (unusable ones go to the dead-letter topic with
the reason in a header), publishes the outputs, waits for the bus to acknowledge them and only
then marks the batch done. A stop event ends the loop after the batch in hand.

If the bus cannot acknowledge outputs the loop keeps flushing (a broker restart only delays
it); if it reports them lost, the loop raises so the process restarts from the committed
offsets instead of marking unpublished work done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from volatility import metrics
from volatility.bus import Bus, Message
from volatility.bus.base import BusUnavailableError, PartitionState
from volatility.exchange.protocol import Frame
from volatility.features import FeatureVector
from volatility.messages import (
    MessageError,
    Prediction,
    Shadow,
    decode_features_batch,
    decode_tick_batch,
    encode_features_batch,
    encode_predictions,
    encode_tick,
    encode_watermark,
)
from volatility.runtime import Health
from volatility.settings import TopicSettings
from volatility.stages import LATE, UNKNOWN_PRODUCT, FeaturizeStage, ScoreStage, TracedVector
from volatility.ticks import StreamRecord, Tick

if TYPE_CHECKING:
    from volatility.monitoring import ModelMonitor
from volatility.watermarks import ExchangeClock

log = logging.getLogger(__name__)

_DEFAULT_TOPICS = TopicSettings.model_construct()


def dead_letter(
    bus: Bus,
    service: str,
    message: Message,
    reason: str,
    detail: str,
    topic: str = _DEFAULT_TOPICS.topic_deadletter,
) -> None:
    metrics.MALFORMED.labels(service, reason).inc()
    metrics.DEADLETTERS.labels(service, reason).inc()
    bus.publish(
        topic,
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


CLOCK_SKEW = "clock_skew"  # dead-letter reason of ingest: exchange time far from receive time


class TickPublisher:
    """Ingest: publishes every tick of every ticker frame, keyed by product, stamped with the
    wall clock at which it entered the pipeline (for end-to-end latency), and the watermarks of
    the exchange's clock (see ``watermarks.py``), keyed by product too.

    With ``max_skew`` set, a frame stamped further than that from its receive time is not
    believed: its ticks go to the dead-letter topic (``clock_skew``) and it does not move the
    clock.
    """

    def __init__(
        self,
        bus: Bus,
        topic: str = _DEFAULT_TOPICS.topic_ticks,
        *,
        products: Sequence[str] = (),
        lag: float = 0.0,
        max_skew: float | None = None,
        deadletter: str = _DEFAULT_TOPICS.topic_deadletter,
    ) -> None:
        self._bus = bus
        self._topic = topic
        self.clock = ExchangeClock(products, lag)
        self._max_skew = max_skew
        self._deadletter = deadletter

    def publish(self, ticks: Sequence[Tick], clock: float | None = None) -> None:
        """Publish ``ticks`` (in event-time order) with the watermarks that the exchange's
        ``clock``, or else the ticks' own times, imply."""
        now = time.time()
        items: list[tuple[str | None, bytes]] = []
        exchange = self.clock
        if clock is not None:
            for mark in exchange.observe(clock):
                items.append((mark.product_id, encode_watermark(mark, now)))
        for t in ticks:
            if clock is None:
                exchange.learn(t.product_id)
                for mark in exchange.observe(t.event_time):
                    items.append((mark.product_id, encode_watermark(mark, now)))
            items.append((t.product_id, encode_tick(t, now)))
        if items:
            self._bus.publish_many(self._topic, items)
        for product, count in Counter(t.product_id for t in ticks).items():
            metrics.TICKS.labels("ingest", product).inc(count)
        for t in ticks:
            metrics.LAST_EVENT_TIME.labels("ingest", t.product_id).set(t.event_time)
        metrics.MESSAGES_OUT.labels("ingest", self._topic).inc(len(items))

    def on_frame(self, frame: Frame) -> None:
        metrics.FRAMES.labels(frame.channel).inc()
        received = time.time()
        if self._max_skew is not None and abs(frame.timestamp - received) > self._max_skew:
            for tick in frame.ticks:
                self._reject(tick, f"stamped {frame.timestamp!r}, received {received!r}")
            return
        self.publish(frame.ticks, clock=frame.timestamp)

    def _reject(self, tick: Tick, detail: str) -> None:
        message = Message(self._topic, tick.product_id, encode_tick(tick, time.time()))
        dead_letter(self._bus, "ingest", message, CLOCK_SKEW, detail, self._deadletter)


def _acknowledge(bus: Bus, stop: threading.Event, health: Health, errors_before: int) -> bool:
    """Wait until everything published is acknowledged; False if stopped first. Raises when
    the bus reports outputs lost."""
    pending = bus.flush(5.0)
    while pending:
        health.beat()  # waiting for a broker is not a stalled loop
        log.warning("outputs not acknowledged yet", extra={"pending": pending})
        if stop.is_set():
            pending = bus.flush(30.0)
            if pending:
                return False
            break
        pending = bus.flush(5.0)
    if bus.delivery_errors != errors_before:
        raise BusUnavailableError("outputs were not delivered; restarting from committed offsets")
    return True


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
    *,
    state: PartitionState | None = None,
    lag_interval: float = 5.0,
) -> None:
    sub = bus.subscribe(topic, group, on_revoke, state=state)
    poll = sub.poll
    in_counter = metrics.MESSAGES_IN.labels(service, topic)
    processing = metrics.PROCESSING_SECONDS.labels(service)
    next_lag = time.monotonic()
    health.set_ready(True)
    try:
        while not stop.is_set():
            batch = poll(max_batch, poll_timeout)
            health.beat()
            if batch:
                errors_before = bus.delivery_errors
                started = time.perf_counter()
                in_counter.inc(len(batch))
                handle(batch)
                if not _acknowledge(bus, stop, health, errors_before):
                    log.error("stopped with outputs unacknowledged; the batch will be redelivered")
                    break
                sub.done(batch)
                processing.observe(time.perf_counter() - started)
            if time.monotonic() >= next_lag:
                next_lag = time.monotonic() + lag_interval
                sub.report_lag()
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
    topics: TopicSettings | None = None,
    lag_interval: float = 5.0,
) -> None:
    stage = stage or FeaturizeStage()
    topics = topics or _DEFAULT_TOPICS
    service = "featurizer"
    out_topic, dlq = topics.topic_features, topics.topic_deadletter
    out_counter = metrics.MESSAGES_OUT.labels(service, out_topic)
    late_counter = metrics.LATE_TICKS.labels(service)
    duplicate_counter = metrics.DUPLICATE_TICKS.labels(service)
    rebuilt_counter = metrics.STATE_REBUILD_MESSAGES.labels(service)

    def revoke(partitions: Sequence[int]) -> None:
        for product in stage.revoke(partitions):
            metrics.HISTORY_RESTARTS.labels(product, "rebalance").inc()
        log.info(
            "partitions revoked; their state is rebuilt by the next owner",
            extra={"partitions": list(partitions)},
        )

    def publish(vectors: list[TracedVector]) -> None:
        if not vectors:
            return
        docs = encode_features_batch([v for v, _ in vectors], [t for _, t in vectors])
        keyed = [(v.product_id, d) for (v, _), d in zip(vectors, docs, strict=True)]
        bus.publish_many(out_topic, keyed)
        out_counter.inc(len(vectors))
        for product, count in Counter(vec.product_id for vec, _ in vectors).items():
            metrics.FEATURE_VECTORS.labels(product).inc(count)
        if on_vector is not None:
            for vec, _ in vectors:
                on_vector(vec)

    def report_stage(batch: Sequence[Message]) -> None:
        if stage.rejected:
            where = {(m.partition, m.offset): m for m in batch}
            for rejection in stage.rejected:
                if rejection.reason == LATE:
                    late_counter.inc()
                dead_letter(
                    bus,
                    service,
                    where[rejection.partition, rejection.offset],
                    rejection.reason,
                    rejection.detail,
                    dlq,
                )
            stage.rejected.clear()
        if stage.duplicate_ticks:
            duplicate_counter.inc(stage.duplicate_ticks)
            stage.duplicate_ticks = 0
        if stage.rebuilt_messages:
            rebuilt_counter.inc(stage.rebuilt_messages)
            stage.rebuilt_messages = 0
        for products, reason in ((stage.gap_restarts, "gap"), (stage.clock_resets, "clock")):
            for product in products:
                metrics.HISTORY_RESTARTS.labels(product, reason).inc()
            products.clear()
        if stage.watermark_vectors:
            for product, count in Counter(stage.watermark_vectors).items():
                metrics.WATERMARK_VECTORS.labels(product).inc(count)
            stage.watermark_vectors.clear()

    def handle(batch: Sequence[Message]) -> None:
        decoded = decode_tick_batch([m.value for m in batch])
        items: list[tuple[int, int, StreamRecord, float]] = []
        append = items.append
        for msg, result in zip(batch, decoded, strict=True):
            if isinstance(result, MessageError):
                dead_letter(bus, service, msg, result.reason, str(result), dlq)
            else:
                append((msg.partition, msg.offset, result[0], result[1]))
        publish(stage.update_batch(items))
        report_stage(batch)
        # Only products the stage took have metric series (their number is bounded).
        lanes = set(stage.products)
        last_time: dict[str, float] = {}
        counts: Counter[str] = Counter()
        for _, _, record, _ in items:
            if type(record) is Tick and record.product_id in lanes:
                last_time[record.product_id] = record.event_time
                counts[record.product_id] += 1
        for product, count in counts.items():
            metrics.TICKS.labels(service, product).inc(count)
            metrics.LAST_EVENT_TIME.labels(service, product).set(last_time[product])

    _run(
        bus,
        topics.topic_ticks,
        topics.group_featurizer,
        service,
        handle,
        stop,
        health,
        revoke,
        max_batch,
        poll_timeout,
        state=stage,
        lag_interval=lag_interval,
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
    topics: TopicSettings | None = None,
    lag_interval: float = 5.0,
    shadow: ScoreStage | None = None,
    monitor: ModelMonitor | None = None,
    products: Collection[str] | None = None,
) -> None:
    """Score feature vectors with ``stage``'s model and publish predictions; with ``shadow``,
    each prediction also carries the other variant's score, and ``monitor`` follows both.

    With ``products``, a vector of any other product is dead-lettered (``unknown_product``)
    instead of scored: a stray document cannot add metric series or live-quality state."""
    import numpy as np

    topics = topics or _DEFAULT_TOPICS
    service = "consumer"
    contract = stage.model.contract
    variant, version, threshold = contract.variant, contract.version, contract.threshold
    shadow_contract = shadow.model.contract if shadow is not None else None
    metrics.MODEL_INFO.labels(service, variant, version).set(1)
    out_topic, dlq = topics.topic_predictions, topics.topic_deadletter
    out_counter = metrics.MESSAGES_OUT.labels(service, out_topic)
    score_hist = metrics.SCORE.labels(variant)
    e2e_hist = metrics.END_TO_END_SECONDS.labels(variant)
    tick_hist = metrics.TICK_TO_PREDICTION_SECONDS.labels(variant)

    def handle(batch: Sequence[Message]) -> None:
        decoded = decode_features_batch([m.value for m in batch])
        for i, exc in decoded.errors:
            dead_letter(bus, service, batch[i], exc.reason, str(exc), dlq)
        if products is not None:
            keep: list[int] = []
            for j, pid in enumerate(decoded.product_ids):
                if pid in products:
                    keep.append(j)
                else:
                    detail = f"product {pid!r} is not one the consumer serves"
                    dead_letter(bus, service, batch[decoded.rows[j]], UNKNOWN_PRODUCT, detail, dlq)
            if len(keep) < len(decoded.rows):
                decoded = decoded.select(keep)
        if not decoded.rows:
            return
        scores = stage.score_matrix(decoded.matrix)
        score_list: list[float] = scores.tolist()
        pids = decoded.product_ids
        shadow_list: list[float] | None = None
        if shadow is not None:
            shadow_list = shadow.score_matrix(decoded.matrix).tolist()
        docs = encode_predictions(
            pids,
            decoded.event_times,
            score_list,
            decoded.trigger_times,
            variant=variant,
            model_version=version,
            threshold=threshold,
            shadow_scores=shadow_list,
            shadow_variant=shadow_contract.variant if shadow_contract else "",
            shadow_threshold=shadow_contract.threshold if shadow_contract else 0.5,
        )
        bus.publish_many(out_topic, list(zip(pids, docs, strict=True)))
        produced_at = time.time()
        out_counter.inc(len(docs))
        for product, count in Counter(pids).items():
            metrics.PREDICTIONS.labels(product, variant).inc(count)
        spikes = Counter(p for p, s in zip(pids, score_list, strict=True) if s >= threshold)
        for product, count in spikes.items():
            metrics.SPIKES.labels(product, variant).inc(count)
        score_hist.observe_many(scores)
        if monitor is not None:
            given: dict[str, Sequence[float]] = {variant: score_list}
            if shadow_list is not None and shadow_contract is not None:
                given[shadow_contract.variant] = shadow_list
            monitor.observe(pids, decoded.event_times, decoded.matrix, given)
        e2e_hist.observe_many(produced_at - np.asarray(decoded.event_times))
        tick_hist.observe_many(produced_at - np.asarray(decoded.trigger_times))
        if on_prediction is not None:
            others = shadow_list if shadow_list is not None else [None] * len(score_list)
            for pid, t, s, trig, other in zip(
                pids, decoded.event_times, score_list, decoded.trigger_times, others, strict=True
            ):
                on_prediction(
                    Prediction(
                        pid,
                        t,
                        s,
                        s >= threshold,
                        variant,
                        version,
                        threshold,
                        None if trig != trig else trig,
                        None
                        if other is None or shadow_contract is None
                        else Shadow(
                            shadow_contract.variant, other, other >= shadow_contract.threshold
                        ),
                    )
                )

    _run(
        bus,
        topics.topic_features,
        topics.group_consumer,
        service,
        handle,
        stop,
        health,
        None,
        max_batch,
        poll_timeout,
        lag_interval=lag_interval,
    )
