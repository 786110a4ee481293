"""The vectors a ticks-topic stream implies: one engine fed every record once, in order.

Whatever the delivery schedule, the featurizer must publish exactly these (tests of the stage,
the embedded pipeline and the Kafka services compare against it).
"""

from __future__ import annotations

from collections.abc import Iterable

from volatility.features import FeatureEngine, FeatureVector
from volatility.ticks import StreamRecord, Tick, Watermark
from volatility.watermarks import ExchangeClock

Key = tuple[str, float]


def reference_vectors(records: Iterable[StreamRecord]) -> list[FeatureVector]:
    engine = FeatureEngine()
    out: list[FeatureVector] = []
    for record in records:
        if type(record) is Watermark:
            out += engine.advance(record.product_id, record.event_time)
        else:
            assert isinstance(record, Tick)
            out += engine.update(record)
    return out


def replayed(ticks: Iterable[Tick]) -> list[StreamRecord]:
    """The records a replay (or the simulator at full speed) puts on the ticks topic."""
    return list(ExchangeClock().stream(ticks))


def reference_by_key(records: Iterable[StreamRecord]) -> dict[Key, tuple[float, ...]]:
    return {(v.product_id, v.event_time): v.values for v in reference_vectors(records)}
