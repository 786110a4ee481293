"""Market figures measured from ticks: the same routine measures recordings and the generator.

Per product, sessions pooled (a session breaks where a product is silent for over two minutes),
in event-time seconds: tick counts per second, inter-tick gaps, spreads, the standard deviation
of one-second mid log-returns, and 60-second realized volatility (root of the sum of squared
one-second returns over a trailing minute). All values in basis points where they are returns.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from volatility.ticks import Tick

SESSION_BREAK_S = 120.0


@dataclass(frozen=True, slots=True)
class MarketStats:
    ticks: int
    seconds: int
    ticks_per_second: float
    ticks_per_second_p99: float
    empty_second_fraction: float
    gap_median_s: float
    gap_p99_s: float
    gap_max_s: float
    spread_bps_median: float
    spread_bps_p90: float
    spread_bps_p99: float
    return_1s_std_bps: float
    rv60_bps_p10: float
    rv60_bps_p50: float
    rv60_bps_p90: float
    rv60_bps_p99: float


def _sessions(ticks: list[Tick]) -> list[list[Tick]]:
    out: list[list[Tick]] = []
    for tick in ticks:
        if not out or tick.event_time - out[-1][-1].event_time > SESSION_BREAK_S:
            out.append([])
        out[-1].append(tick)
    return out


def _per_second(session: list[Tick]) -> tuple[np.ndarray, np.ndarray]:
    """Tick count and closing mid of each covered second (mid carried over empty seconds)."""
    start = math.floor(session[0].event_time)
    n = math.floor(session[-1].event_time) - start + 1
    counts = np.zeros(n, dtype=np.int64)
    close = np.full(n, np.nan)
    for tick in session:
        i = min(max(math.floor(tick.event_time) - start, 0), n - 1)
        counts[i] += 1
        close[i] = tick.mid
    # Forward-fill the seconds without a tick.
    idx = np.where(np.isnan(close), 0, np.arange(n))
    np.maximum.accumulate(idx, out=idx)
    return counts, close[idx]


def measure(ticks: Iterable[Tick]) -> dict[str, MarketStats]:
    by_product: dict[str, list[Tick]] = defaultdict(list)
    for tick in ticks:
        by_product[tick.product_id].append(tick)
    result: dict[str, MarketStats] = {}
    for product, series in sorted(by_product.items()):
        counts_all: list[np.ndarray] = []
        returns_all: list[np.ndarray] = []
        rv_all: list[np.ndarray] = []
        gaps_all: list[np.ndarray] = []
        for session in _sessions(series):
            counts, close = _per_second(session)
            counts_all.append(counts)
            times = np.fromiter((t.event_time for t in session), dtype=np.float64)
            gaps_all.append(np.diff(times))
            returns = np.diff(np.log(close)) * 1e4
            returns_all.append(returns)
            if returns.size >= 60:
                squares = np.concatenate(([0.0], np.cumsum(returns**2)))
                rv_all.append(np.sqrt(squares[60:] - squares[:-60]))
        counts = np.concatenate(counts_all)
        returns = np.concatenate(returns_all)
        gaps = np.concatenate(gaps_all) if gaps_all else np.zeros(1)
        rv = np.concatenate(rv_all) if rv_all else np.zeros(1)
        spreads = np.fromiter((t.spread_bps for t in series), dtype=np.float64)
        result[product] = MarketStats(
            ticks=len(series),
            seconds=int(counts.size),
            ticks_per_second=float(counts.mean()),
            ticks_per_second_p99=float(np.percentile(counts, 99)),
            empty_second_fraction=float((counts == 0).mean()),
            gap_median_s=float(np.median(gaps)),
            gap_p99_s=float(np.percentile(gaps, 99)),
            gap_max_s=float(gaps.max()),
            spread_bps_median=float(np.median(spreads)),
            spread_bps_p90=float(np.percentile(spreads, 90)),
            spread_bps_p99=float(np.percentile(spreads, 99)),
            return_1s_std_bps=float(returns.std()),
            rv60_bps_p10=float(np.percentile(rv, 10)),
            rv60_bps_p50=float(np.percentile(rv, 50)),
            rv60_bps_p90=float(np.percentile(rv, 90)),
            rv60_bps_p99=float(np.percentile(rv, 99)),
        )
    return result
