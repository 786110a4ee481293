"""A brute-force restatement of the feature definitions, for checking the incremental engine.

Every vector is recomputed from scratch from the raw ticks of its window with numpy: no running
sums, no ring, no deques. Slow on purpose and written from the definitions in features/spec.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from volatility.features.spec import (
    DETAIL_WINDOWS,
    MAX_GAP_SECONDS,
    RV_UNIT_SECONDS,
    WARMUP_SECONDS,
    WINDOWS,
)
from volatility.ticks import Tick


def segments(ticks: Sequence[Tick]) -> Iterator[list[Tick]]:
    """Split one product's ticks into histories at silences longer than MAX_GAP_SECONDS."""
    seg: list[Tick] = []
    for tick in ticks:
        if seg and math.floor(tick.event_time) - math.floor(seg[-1].event_time) > MAX_GAP_SECONDS:
            yield seg
            seg = []
        seg.append(tick)
    if seg:
        yield seg


def reference_vectors(ticks: Sequence[Tick]) -> list[tuple[float, list[float]]]:
    """(event time, values) of every vector the engine should emit for one product's ticks."""
    out: list[tuple[float, list[float]]] = []
    for seg in segments(ticks):
        times = np.array([t.event_time for t in seg])
        mids = np.array([(t.best_bid + t.best_ask) / 2 for t in seg])
        spreads = (np.array([t.best_ask - t.best_bid for t in seg]) / mids) * 1e4
        rets = np.concatenate([[np.nan], np.log(mids[1:] / mids[:-1]) * 1e4])
        start = math.floor(times[0])
        for t in range(start + WARMUP_SECONDS, math.floor(times[-1]) + 1):
            out.append((float(t), _vector(t, start, times, mids, spreads, rets)))
    return out


def _vector(
    t: int,
    start: int,
    times: np.ndarray,
    mids: np.ndarray,
    spreads: np.ndarray,
    rets: np.ndarray,
) -> list[float]:
    values: list[float] = []
    rv: dict[int, float] = {}
    before_t = times < t
    last = int(np.flatnonzero(before_t)[-1])
    for w in WINDOWS:
        inside = (times >= t - w) & before_t
        covered = min(w, t - start)
        r = rets[inside]
        r = r[~np.isnan(r)]
        rv[w] = math.sqrt(math.fsum(r * r) * RV_UNIT_SECONDS / covered)
        values += [rv[w], int(inside.sum()) / covered]
    for w in DETAIL_WINDOWS:
        inside = (times >= t - w) & before_t
        s = spreads[inside]
        if len(s):
            mean = math.fsum(s) / len(s)
            std = math.sqrt(max(math.fsum(s * s) / len(s) - mean * mean, 0.0))
        else:
            mean, std = float(spreads[last]), 0.0
        r = rets[inside]
        r = r[~np.isnan(r)]
        ret_mean = math.fsum(r) / len(r) if len(r) else 0.0
        window_mids = list(mids[inside])
        if t - w > start:
            window_mids.append(mids[int(np.flatnonzero(times < t - w)[-1])])
        rng = (max(window_mids) - min(window_mids)) / mids[last] * 1e4 if window_mids else 0.0
        values += [mean, std, ret_mean, rng]
    values.append(rv[10] / rv[60] if rv[60] > 0 else 1.0)
    values.append(rv[60] / rv[300] if rv[300] > 0 else 1.0)
    values.append(t - times[last])
    return values
