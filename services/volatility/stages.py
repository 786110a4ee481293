"""The pipeline's processing steps, independent of the bus they run on.

Each stage turns decoded input into output documents and keeps whatever state it needs; the
service loops (``loops.py``) move messages between the bus and a stage.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from volatility.features import FeatureEngine, FeatureVector
from volatility.features.engine import DUPLICATE
from volatility.features.engine import LATE as LATE_TICK
from volatility.messages import Prediction
from volatility.scoring.model import Model
from volatility.settings import DEFAULT_REBUILD_SECONDS
from volatility.ticks import DEFAULT_MAX_SKEW_SECONDS, StreamRecord, Watermark

#: Why the featurizer sets a ticks-topic record aside (dead-letter ``reason`` header values).
UNKNOWN_PRODUCT = "unknown_product"  # not one of the configured products
CLOCK_SKEW = "clock_skew"  # further from its product's stream clock than ``max_skew``
FUTURE_TIME = "future_time"  # further ahead of its own ingest time than ``max_lead``
LATE = "late"  # before a boundary its product has already closed
STAGE_REASONS = (UNKNOWN_PRODUCT, CLOCK_SKEW, FUTURE_TIME, LATE)


class _Lane:
    """One product's engine, its partition and its stream clock."""

    __slots__ = ("clock", "engine", "partition")

    def __init__(self, partition: int) -> None:
        self.engine = FeatureEngine()
        self.partition = partition
        self.clock = -math.inf  # latest accepted event time or watermark of the product


class _PartitionLog:
    """Where a partition's state can be rebuilt from: the first offset of each event second of
    the last ``rebuild_seconds`` (trimmed as it goes, so its size is bounded)."""

    __slots__ = ("event_time", "marks", "resume")

    def __init__(self, resume: int) -> None:
        self.resume = resume  # outputs of offsets below this were published before
        self.marks: deque[tuple[int, int]] = deque()  # (event second, its first offset)
        self.event_time = -math.inf


class Rejection(NamedTuple):
    """A ticks-topic record the stage set aside, to be dead-lettered by the loop."""

    partition: int
    offset: int
    reason: str
    detail: str


#: A feature vector and its trigger time: the ingest time of the tick or watermark that closed
#: its window (NaN when the producer recorded none).
TracedVector = tuple[FeatureVector, float]


class FeaturizeStage:
    """Ticks and watermarks to feature vectors, one engine per product, grouped by partition.

    The output is a function of the records of each partition, in offset order, and of nothing
    else (no wall clock): any delivery schedule (stalls, redeliveries, restarts, rebalances)
    publishes the same value for each (product, second).

    * Windows close on data: a product's boundary closes when its first tick at or after it
      arrives, or when a watermark record of that product passes it (the ingest writes one per
      product per second of exchange time, so quiet products keep their cadence).
    * Lateness contract: a tick whose second a tick or watermark of its product has already
      closed is set aside as ``late``. The ingest publishes a watermark only once the exchange's
      clock (the timestamps of the frames it received, in order) has passed it, so with an
      exchange that stamps frames in order no tick is late.
    * Poison cannot stall a product: a tick more than ``max_skew`` away from its product's stream
      clock (the latest accepted event time or watermark) is set aside as ``clock_skew``; a tick
      or watermark more than ``max_lead`` ahead of its own ingest time as ``future_time``; a
      product outside ``products`` as ``unknown_product``. A watermark more than ``max_skew``
      behind its product's clock resets that clock (and the product's history): the clock had
      been moved by a poison that came before any watermark.
    * Recovery: each stored offset carries a *checkpoint*, the offset ``rebuild_seconds`` of
      event time earlier; after a restart or reassignment the partition is re-read from there
      with outputs (vectors and rejections) suppressed below the committed offset. The engine's
      values depend only on the windows' ticks, so the re-published vectors are bit-identical.
    """

    def __init__(
        self,
        *,
        products: Iterable[str] | None = None,
        max_skew: float = DEFAULT_MAX_SKEW_SECONDS,
        max_lead: float | None = DEFAULT_MAX_SKEW_SECONDS,
        rebuild_seconds: float = DEFAULT_REBUILD_SECONDS,
    ) -> None:
        self._lanes: dict[str, _Lane] = {}
        self._logs: dict[int, _PartitionLog] = {}
        self._products = frozenset(products) if products is not None else None
        self._max_skew = max_skew
        self._max_lead = max_lead if max_lead is not None else math.inf
        self._rebuild_seconds = rebuild_seconds
        # Counters the loop drains into metrics.
        self.rejected: list[Rejection] = []
        self.duplicate_ticks = 0
        self.gap_restarts: list[str] = []
        self.clock_resets: list[str] = []
        self.rebuilt_messages = 0
        self.watermark_vectors: list[str] = []

    def update(self, record: StreamRecord, partition: int = 0) -> list[FeatureVector]:
        return [v for v, _ in self.update_batch([(partition, -1, record, math.nan)])]

    def update_batch(
        self, items: Iterable[tuple[int, int, StreamRecord, float]]
    ) -> list[TracedVector]:
        """Feed (partition, offset, record, ingest time) in offset order; return the vectors to
        publish. Records set aside are appended to ``rejected``."""
        out: list[TracedVector] = []
        lanes, logs = self._lanes, self._logs
        products = self._products
        max_skew, max_lead = self._max_skew, self._max_lead
        rebuild_seconds = self._rebuild_seconds
        log = _PartitionLog(-1)
        log_partition: int | None = None
        for partition, offset, record, ingest in items:
            if partition != log_partition:
                found = logs.get(partition)
                if found is None:
                    found = logs[partition] = _PartitionLog(-1)
                log, log_partition = found, partition
            replayed = offset < log.resume
            if replayed:
                self.rebuilt_messages += 1
            pid = record.product_id
            t = record.event_time
            reason = ""
            if products is not None and pid not in products:
                reason = UNKNOWN_PRODUCT
            elif t > ingest + max_lead:  # False when ingest is NaN
                reason = FUTURE_TIME
            if reason:
                if not replayed:
                    self.rejected.append(Rejection(partition, offset, reason, f"{pid} at {t!r}"))
                continue
            lane = lanes.get(pid)
            if lane is None or lane.partition != partition:
                lane = lanes[pid] = _Lane(partition)
            engine = lane.engine
            if type(record) is Watermark:
                if t < lane.clock - max_skew:
                    lane.engine = engine = FeatureEngine()
                    lane.clock = t
                    self.clock_resets.append(pid)
                elif t > lane.clock:
                    lane.clock = t
                vectors = engine.advance(pid, t)
                if vectors and not replayed:
                    self.watermark_vectors += [pid] * len(vectors)
            else:
                if abs(t - lane.clock) > max_skew and lane.clock != -math.inf:
                    if not replayed:
                        detail = f"{pid} at {t!r}, its stream at {lane.clock!r}"
                        self.rejected.append(Rejection(partition, offset, CLOCK_SKEW, detail))
                    continue
                restarts = engine.stats.history_restarts
                vectors = engine.update(record)  # type: ignore[arg-type]
                if vectors is LATE_TICK:
                    if not replayed:
                        detail = f"{pid} at {t!r}, closed up to {lane.clock!r}"
                        self.rejected.append(Rejection(partition, offset, LATE, detail))
                    continue
                if vectors is DUPLICATE:
                    self.duplicate_ticks += not replayed
                    continue
                if engine.stats.history_restarts != restarts and not replayed:
                    self.gap_restarts.append(pid)
                if t > lane.clock:
                    lane.clock = t
            if t > log.event_time:
                log.event_time = t
                sec = int(t)
                marks = log.marks
                if not marks or sec > marks[-1][0]:
                    marks.append((sec, offset))
                    cut = t - rebuild_seconds
                    while len(marks) > 1 and marks[1][0] <= cut:
                        marks.popleft()
            if vectors and not replayed:
                for vec in vectors:
                    out.append((vec, ingest))
        return out

    # -- recovery and rebalances ------------------------------------------------------------

    def checkpoint(self, partition: int) -> int | None:
        """The offset from which ``partition``'s current state can be rebuilt."""
        log = self._logs.get(partition)
        if log is None or not log.marks:
            return None
        return max(log.marks[0][1], 0)

    def rebuild(self, partition: int, until: int) -> None:
        """``partition`` is re-read from an earlier checkpoint: outputs before ``until`` were
        already published, so they are suppressed while the state is rebuilt."""
        self.revoke([partition])
        self._logs[partition] = _PartitionLog(until)

    def revoke(self, partitions: Iterable[int]) -> list[str]:
        """Drop the state of lost partitions; return the products whose windows restart."""
        lost = set(partitions)
        dropped = [pid for pid, lane in self._lanes.items() if lane.partition in lost]
        for pid in dropped:
            del self._lanes[pid]
        for p in lost:
            self._logs.pop(p, None)
        return dropped

    @property
    def products(self) -> tuple[str, ...]:
        return tuple(self._lanes)

    def state_size(self) -> int:
        """Entries held across all products and partitions (bounded; checked by a test)."""
        return len(self._lanes) + sum(len(log.marks) + 1 for log in self._logs.values())


#: Rows are scored in batches padded to a multiple of this: onnxruntime's kernels take other
#: paths for other row counts (a single row above all), which changes a score's last bits, so a
#: vector redelivered in another batch would get another score. Padded, a row's score is the same
#: in any batch (checked on both shipped models by tests/unit/test_score_stage.py).
SCORE_ROW_MULTIPLE = 16


class ScoreStage:
    """Feature vectors to predictions, scored in batches through one onnxruntime session."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Scores (float64) of a float32 matrix in FEATURE_NAMES column order: one model call;
        a row's score does not depend on the other rows of the batch."""
        rows = len(matrix)
        if not rows:
            return np.empty(0, dtype=np.float64)
        padded = -(-rows // SCORE_ROW_MULTIPLE) * SCORE_ROW_MULTIPLE
        if padded != rows:
            matrix = np.concatenate(
                [matrix, np.zeros((padded - rows, matrix.shape[1]), dtype=matrix.dtype)]
            )
        return np.asarray(self.model.score(matrix), dtype=np.float64)[:rows]

    def score(self, vectors: Sequence[FeatureVector]) -> list[Prediction]:
        if not vectors:
            return []
        scores = self.score_matrix(np.array([v.values for v in vectors], dtype=np.float32))
        c = self.model.contract
        return [
            Prediction(
                product_id=v.product_id,
                event_time=v.event_time,
                score=float(s),
                spike=bool(s >= c.threshold),
                variant=c.variant,
                model_version=c.version,
                threshold=c.threshold,
            )
            for v, s in zip(vectors, scores, strict=True)
        ]
