"""The pipeline's processing steps, independent of the bus they run on.

Each stage turns decoded input into output documents and keeps whatever state it needs; the
service loops (``loops.py``) move messages between the bus and a stage.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np

from volatility.features import FeatureEngine, FeatureVector
from volatility.messages import Prediction
from volatility.scoring.model import Model
from volatility.ticks import Tick


class FeaturizeStage:
    """Ticks to feature vectors, with one engine per input partition.

    Products are keyed, so a product's ticks live in one partition; when a partition moves to
    another process its state is dropped here and warms up again there.
    """

    def __init__(self) -> None:
        self._engines: dict[int, FeatureEngine] = {}

    def engine(self, partition: int) -> FeatureEngine:
        engine = self._engines.get(partition)
        if engine is None:
            engine = self._engines[partition] = FeatureEngine()
        return engine

    def update(self, tick: Tick, partition: int = 0) -> list[FeatureVector]:
        return self.engine(partition).update(tick)

    def advance_to(self, watermark: float) -> list[FeatureVector]:
        out: list[FeatureVector] = []
        for engine in self._engines.values():
            out += engine.advance_to(watermark)
        return out

    def revoke(self, partitions: Iterable[int]) -> list[str]:
        """Drop the state of lost partitions; return the products whose windows restart."""
        dropped: list[str] = []
        for p in partitions:
            engine = self._engines.pop(p, None)
            if engine is not None:
                dropped += engine.products
        return dropped

    @property
    def late_ticks(self) -> int:
        return sum(e.stats.late_ticks for e in self._engines.values())


class ScoreStage:
    """Feature vectors to predictions, scored in batches through one onnxruntime session."""

    def __init__(self, model: Model) -> None:
        self.model = model

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


def end_to_end_seconds(pred: Prediction, now: float | None = None) -> float:
    """Delay from the end of the prediction's window (event time) to now."""
    return (time.time() if now is None else now) - pred.event_time
