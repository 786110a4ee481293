"""Hand-made tick series whose volatility is known by construction."""

from __future__ import annotations

import itertools
import math

import numpy as np

from volatility.ticks import Tick

T0 = 1_775_000_000.0  # a whole second, so buckets line up with the construction
HALF_SPREAD = 0.5e-4  # relative to mid: a spread of 1 bps


def ticks_from_returns(
    returns_bps: np.ndarray,
    start: float = T0,
    step: float = 0.25,
    product: str = "BTC-USD",
    mid0: float = 60_000.0,
) -> list[Tick]:
    """One tick every ``step`` seconds; tick k >= 1 moves the mid by ``returns_bps[k - 1]``."""
    mids = mid0 * np.exp(np.r_[0.0, np.cumsum(returns_bps)] * 1e-4)
    return [
        Tick(
            product_id=product,
            event_time=start + k * step,
            price=float(m),
            best_bid=float(m * (1 - HALF_SPREAD)),
            best_ask=float(m * (1 + HALF_SPREAD)),
        )
        for k, m in enumerate(mids)
    ]


def forward_rv_bps(ticks: list[Tick], t: float, horizon: float) -> float:
    """Realized volatility of the ticks with event time in [t, t + horizon), bps per 60 s."""
    total = 0.0
    for prev, cur in itertools.pairwise(ticks):
        if t <= cur.event_time < t + horizon:
            total += (math.log(cur.mid / prev.mid) * 1e4) ** 2
    return math.sqrt(total * 60.0 / horizon)


def calm_then_burst(
    seed: int, calm_s: int = 360, burst_s: int = 150, calm_bps: float = 0.05, burst_bps: float = 4.0
) -> tuple[list[Tick], float]:
    """Ticks 4 per second: a calm stretch, then a burst; returns (ticks, burst start time)."""
    rng = np.random.default_rng(seed)
    per_s = 4
    calm = rng.normal(0.0, calm_bps, calm_s * per_s)
    burst = rng.normal(0.0, burst_bps, burst_s * per_s)
    ticks = ticks_from_returns(np.r_[calm, burst], step=1.0 / per_s)
    return ticks, T0 + calm_s
