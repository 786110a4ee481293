"""The pipeline's processing steps, independent of the bus they run on.

Each stage turns decoded input into output documents and keeps whatever state it needs; the
service loops (``loops.py``) move messages between the bus and a stage.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np

from volatility.features import FeatureEngine, FeatureVector
from volatility.features.spec import MAX_GAP_SECONDS
from volatility.messages import Prediction
from volatility.scoring.model import Model
from volatility.ticks import Tick


class _Lane:
    """One product's engine and the bookkeeping the stage keeps around it."""

    __slots__ = ("engine", "last_time", "partition")

    def __init__(self, partition: int) -> None:
        self.engine = FeatureEngine()
        self.partition = partition
        self.last_time = -math.inf


class _PartitionLog:
    """Where a partition's state can be rebuilt from, and its event clock for the watermark."""

    __slots__ = ("event_time", "marks", "resume", "seen_at")

    def __init__(self, resume: int) -> None:
        self.resume = resume  # vectors of offsets below this were published before
        self.marks: deque[tuple[int, int]] = deque()  # (event second, its first offset)
        self.event_time = -math.inf
        self.seen_at = 0.0


#: A feature vector and its trigger time (ingest wall clock of the tick that closed the window,
#: or the wall clock of the watermark that closed it; NaN when unknown).
TracedVector = tuple[FeatureVector, float]


class FeaturizeStage:
    """Ticks to feature vectors, with one engine per product, grouped by input partition.

    Products are keyed, so a product's ticks live in one partition. Three things make the
    Kafka featurizer lose no vector and wait for no tick:

    * recovery: each stored offset carries a *checkpoint*, the offset ``rebuild_seconds`` of
      event time earlier; after a restart or reassignment the partition is re-read from there
      with outputs suppressed up to the committed offset, so windows are rebuilt, not warmed up;
    * gaps: a silence longer than MAX_GAP_SECONDS restarts the product's history, decided here
      from tick times so that it holds even after the watermark moved the engine on;
    * watermark (``lateness`` >= 0): when the feed is quiet, a partition's event clock (its latest
      event time plus the wall time since) minus ``lateness`` closes due windows without waiting
      for the next tick; a product is never advanced more than MAX_GAP_SECONDS past its last tick.
    """

    def __init__(self, *, lateness: float | None = None, rebuild_seconds: float = 330.0) -> None:
        self._lanes: dict[str, _Lane] = {}
        self._logs: dict[int, _PartitionLog] = {}
        self._lateness = lateness if lateness is not None and lateness >= 0 else None
        self._rebuild_seconds = rebuild_seconds
        self.late_ticks = 0
        self.gap_restarts: list[str] = []
        self.rebuilt_messages = 0

    # -- the tick path ----------------------------------------------------------------------

    def _lane(self, product_id: str, partition: int) -> _Lane:
        lane = self._lanes.get(product_id)
        if lane is None or lane.partition != partition:
            lane = self._lanes[product_id] = _Lane(partition)
        return lane

    def update(self, tick: Tick, partition: int = 0) -> list[FeatureVector]:
        return [v for v, _ in self.update_batch([(partition, -1, tick, math.nan)])]

    def update_batch(
        self, items: Iterable[tuple[int, int, Tick, float]], now: float | None = None
    ) -> list[TracedVector]:
        """Feed (partition, offset, tick, ingest time) in order; return the vectors to publish."""
        out: list[TracedVector] = []
        lanes, logs = self._lanes, self._logs
        floor = math.floor
        max_gap = MAX_GAP_SECONDS
        seen_at = time.time() if now is None else now
        log = _PartitionLog(-1)
        log_partition: int | None = None
        for partition, offset, tick, ingest in items:
            if partition != log_partition:
                found = logs.get(partition)
                if found is None:
                    found = logs[partition] = _PartitionLog(-1)
                log, log_partition = found, partition
            t = tick.event_time
            lane = lanes.get(tick.product_id)
            if lane is None or lane.partition != partition:
                lane = self._lane(tick.product_id, partition)
            elif floor(t) - floor(lane.last_time) > max_gap:
                lane.engine = FeatureEngine()  # same rule as the engine's own gap restart
                self.gap_restarts.append(tick.product_id)
            if t >= lane.last_time:
                lane.last_time = t
            late_before = lane.engine.stats.late_ticks
            vectors = lane.engine.update(tick)
            if lane.engine.stats.late_ticks != late_before:
                self.late_ticks += 1
            if t > log.event_time:
                log.event_time = t
                sec = int(t)
                if not log.marks or sec > log.marks[-1][0]:
                    log.marks.append((sec, offset))
            log.seen_at = seen_at
            if offset < log.resume:
                self.rebuilt_messages += 1
                continue
            for vec in vectors:
                out.append((vec, ingest))
        return out

    # -- the watermark ----------------------------------------------------------------------

    def advance(self, now: float) -> list[TracedVector]:
        """Close the windows a quiet feed has made due; call when the input is caught up."""
        if self._lateness is None:
            return []
        out: list[TracedVector] = []
        for lane in self._lanes.values():
            log = self._logs.get(lane.partition)
            if log is None or lane.last_time == -math.inf:
                continue
            watermark = min(
                log.event_time + (now - log.seen_at) - self._lateness,
                math.floor(lane.last_time) + MAX_GAP_SECONDS,
            )
            out += [(vec, now) for vec in lane.engine.advance_to(watermark)]
        return out

    def next_due(self, now: float) -> float | None:
        """Seconds until the watermark may close another window (None: nothing pending)."""
        if self._lateness is None:
            return None
        due: float | None = None
        for log in self._logs.values():
            if log.event_time == -math.inf:
                continue
            boundary = math.floor(log.event_time) + 1
            wait = boundary + self._lateness - log.event_time - (now - log.seen_at)
            due = wait if due is None else min(due, wait)
        return None if due is None else max(due, 0.0)

    # -- recovery and rebalances ------------------------------------------------------------

    def checkpoint(self, partition: int) -> int | None:
        """The offset from which ``partition``'s current state can be rebuilt."""
        log = self._logs.get(partition)
        if log is None or not log.marks:
            return None
        marks = log.marks
        cut = log.event_time - self._rebuild_seconds
        while len(marks) > 1 and marks[1][0] <= cut:
            marks.popleft()
        return max(marks[0][1], 0)

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


class ScoreStage:
    """Feature vectors to predictions, scored in batches through one onnxruntime session."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Scores (float64) of a float32 matrix in FEATURE_NAMES column order: one model call."""
        if not len(matrix):
            return np.empty(0, dtype=np.float64)
        return np.asarray(self.model.score(matrix), dtype=np.float64)

    def score(self, vectors: Sequence[FeatureVector]) -> list[Prediction]:
        if not vectors:
            return []
        x = np.array([v.values for v in vectors], dtype=np.float32)
        scores = self.model.score(x)
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
