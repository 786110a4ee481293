"""Incremental, event-time feature engine: the only feature implementation in the project.

Ticks of a product are aggregated into one-second buckets of event time. When a bucket closes,
window sums are updated by adding the new bucket and removing the one that left the window, and
range uses monotonic deques over buckets, so the work per tick is O(1) and the work per emitted
vector is O(number of windows), independent of the tick rate.

Cadence: one vector per product per second of event time, at each whole-second boundary ``t``,
describing the ticks with event time in ``[t - W, t)``. A boundary is emitted when the first tick
at or after it arrives, or when a watermark (:meth:`FeatureEngine.advance`: "no tick of this
product before W will come") passes it; both come from the stream, so streaming and replaying it
give identical vectors.

A tick identical to one already taken at the same event time (same price, bid, ask and 24 h
volume) is a duplicate delivery, not market activity: it is counted and ignored.

Values depend only on the ticks inside the windows, not on how long the history is: window sums
are recomputed exactly from the buckets at every whole multiple of ``RESYNC_SECONDS`` of event
time, so two engines that saw the same ticks for that long (a restarted one rebuilding its state,
say) emit bit-identical vectors.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from volatility.features.spec import (
    DETAIL_WINDOWS,
    FEATURE_NAMES,
    MAX_GAP_SECONDS,
    RV_UNIT_SECONDS,
    WARMUP_SECONDS,
    WINDOWS,
)
from volatility.ticks import Tick

_RING = max(WINDOWS) + 2
_NW = len(WINDOWS)
_DETAIL_IDX = tuple(WINDOWS.index(w) for w in DETAIL_WINDOWS)
_IDX10, _IDX60, _IDX300 = WINDOWS.index(10), WINDOWS.index(60), WINDOWS.index(300)
#: Window sums are rebuilt from the ring at every event second divisible by this, so rounding from
#: add/remove cannot drift and depends on the window's ticks only (not on the history's length).
RESYNC_SECONDS = 60
# Distinct ticks remembered per event time for spotting duplicates (real ones number a few).
_MAX_SAME_TIME = 32
#: Event time an engine must have seen before its vectors equal those of any engine that saw more
#: of the same stream: the longest window, one resync period, one gap and a second of margin.
CONVERGENCE_SECONDS = max(WINDOWS) + RESYNC_SECONDS + MAX_GAP_SECONDS + 1


@dataclass(frozen=True, slots=True)
class FeatureVector:
    """Features of one product at a whole second ``event_time``, in FEATURE_NAMES order."""

    product_id: str
    event_time: float
    values: tuple[float, ...]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(FEATURE_NAMES, self.values, strict=True))


@dataclass(slots=True)
class EngineStats:
    """Counts of ticks the engine set aside, and history restarts."""

    ticks: int = 0
    vectors: int = 0
    late_ticks: int = 0
    duplicate_ticks: int = 0
    history_restarts: int = 0
    by_product_restarts: dict[str, int] = field(default_factory=dict)


class _ProductState:
    """History of one product: the open bucket, a ring of closed buckets and window sums."""

    __slots__ = (
        "b_mn",
        "b_mx",
        "b_n",
        "b_nr",
        "b_nz",
        "b_sr",
        "b_sr2",
        "b_ss",
        "b_ss2",
        "cur",
        "last_mid",
        "last_sec",
        "last_spread",
        "last_tick",
        "last_time",
        "maxq",
        "minq",
        "product_id",
        "r_close",
        "r_mn",
        "r_mx",
        "r_n",
        "r_nr",
        "r_nz",
        "r_sr",
        "r_sr2",
        "r_ss",
        "r_ss2",
        "same_time",
        "start",
        "w_n",
        "w_nr",
        "w_nz",
        "w_sr",
        "w_sr2",
        "w_ss",
        "w_ss2",
    )

    def __init__(self, product_id: str, start: int) -> None:
        self.product_id = product_id
        self.start = start
        self.cur = start
        self.last_mid = math.nan
        self.last_spread = math.nan
        self.last_time = -math.inf
        self.last_sec = start  # floor(last_time) once a tick was taken
        # The ticks taken at last_time, to spot duplicate deliveries: the last one, and the
        # others when several share that time.
        self.last_tick: Tick | None = None
        self.same_time: list[Tick] | None = None
        self._clear_bucket()
        z = [0.0] * _RING
        self.r_n, self.r_nr, self.r_nz = [0] * _RING, [0] * _RING, [0] * _RING
        self.r_sr, self.r_sr2, self.r_ss, self.r_ss2 = z[:], z[:], z[:], z[:]
        self.r_mx, self.r_mn, self.r_close = z[:], z[:], z[:]
        self.w_n, self.w_nr, self.w_nz = [0] * _NW, [0] * _NW, [0] * _NW
        self.w_sr, self.w_sr2 = [0.0] * _NW, [0.0] * _NW
        self.w_ss, self.w_ss2 = [0.0] * _NW, [0.0] * _NW
        self.maxq: list[deque[tuple[int, float]]] = [deque() for _ in DETAIL_WINDOWS]
        self.minq: list[deque[tuple[int, float]]] = [deque() for _ in DETAIL_WINDOWS]

    def _clear_bucket(self) -> None:
        self.b_n = 0
        self.b_nr = 0
        self.b_nz = 0
        self.b_sr = 0.0
        self.b_sr2 = 0.0
        self.b_ss = 0.0
        self.b_ss2 = 0.0
        self.b_mx = -math.inf
        self.b_mn = math.inf

    def add(self, time: float, mid: float, spread: float) -> None:
        prev = self.last_mid
        if prev == prev:  # not NaN: the first tick of a history has no return
            r = math.log(mid / prev) * 1e4
            self.b_nr += 1
            if r != 0.0:
                self.b_nz += 1
            self.b_sr += r
            self.b_sr2 += r * r
        self.b_n += 1
        self.b_ss += spread
        self.b_ss2 += spread * spread
        if mid > self.b_mx:
            self.b_mx = mid
        if mid < self.b_mn:
            self.b_mn = mid
        self.last_mid = mid
        self.last_spread = spread
        self.last_time = time

    def close_through(self, boundary: int, out: list[FeatureVector]) -> None:
        """Close buckets up to ``boundary - 1`` and emit the vectors of every boundary passed."""
        while self.cur < boundary:
            self._close_bucket()
            self.cur += 1
            if self.cur - self.start >= WARMUP_SECONDS:
                out.append(self._vector(self.cur))

    def _close_bucket(self) -> None:
        b = self.cur
        i = b % _RING
        n, nr, nz = self.b_n, self.b_nr, self.b_nz
        sr, sr2, ss, ss2 = self.b_sr, self.b_sr2, self.b_ss, self.b_ss2
        self.r_n[i], self.r_nr[i], self.r_nz[i] = n, nr, nz
        self.r_sr[i], self.r_sr2[i], self.r_ss[i], self.r_ss2[i] = sr, sr2, ss, ss2
        self.r_mx[i], self.r_mn[i] = self.b_mx, self.b_mn
        self.r_close[i] = self.last_mid
        start = self.start
        w_n, w_nr, w_nz, w_sr, w_sr2, w_ss, w_ss2 = (
            self.w_n,
            self.w_nr,
            self.w_nz,
            self.w_sr,
            self.w_sr2,
            self.w_ss,
            self.w_ss2,
        )
        for k, w in enumerate(WINDOWS):
            old = b - w
            if old >= start:
                j = old % _RING
                w_n[k] += n - self.r_n[j]
                w_nr[k] += nr - self.r_nr[j]
                w_nz[k] += nz - self.r_nz[j]
                w_sr[k] += sr - self.r_sr[j]
                w_sr2[k] += sr2 - self.r_sr2[j]
                w_ss[k] += ss - self.r_ss[j]
                w_ss2[k] += ss2 - self.r_ss2[j]
            else:
                w_n[k] += n
                w_nr[k] += nr
                w_nz[k] += nz
                w_sr[k] += sr
                w_sr2[k] += sr2
                w_ss[k] += ss
                w_ss2[k] += ss2
            # A window without a price move has return sums of exactly zero (and one without
            # ticks, spread sums of zero): clear the residue that add/remove leaves, so that
            # ratios of two quiet windows are not ratios of rounding errors.
            if not w_nz[k]:
                w_sr[k] = w_sr2[k] = 0.0
            if not w_n[k]:
                w_ss[k] = w_ss2[k] = 0.0
        if n:
            mx, mn = self.b_mx, self.b_mn
            for q in self.maxq:
                while q and q[-1][1] <= mx:
                    q.pop()
                q.append((b, mx))
            for q in self.minq:
                while q and q[-1][1] >= mn:
                    q.pop()
                q.append((b, mn))
        for q, w in zip(self.maxq, DETAIL_WINDOWS, strict=True):
            while q and q[0][0] <= b - w:
                q.popleft()
        for q, w in zip(self.minq, DETAIL_WINDOWS, strict=True):
            while q and q[0][0] <= b - w:
                q.popleft()
        self._clear_bucket()
        if b % RESYNC_SECONDS == 0:
            self._resync(b)

    def _resync(self, b: int) -> None:
        # Counts are integers, exact already; only the float sums are recomputed.
        for k, w in enumerate(WINDOWS):
            lo, hi = max(self.start, b - w + 1) % _RING, b % _RING
            if lo <= hi:
                cut = slice(lo, hi + 1)
                self.w_sr[k] = math.fsum(self.r_sr[cut])
                self.w_sr2[k] = math.fsum(self.r_sr2[cut])
                self.w_ss[k] = math.fsum(self.r_ss[cut])
                self.w_ss2[k] = math.fsum(self.r_ss2[cut])
            else:  # the window wraps around the ring
                head, tail = slice(lo, None), slice(0, hi + 1)
                self.w_sr[k] = math.fsum(self.r_sr[head] + self.r_sr[tail])
                self.w_sr2[k] = math.fsum(self.r_sr2[head] + self.r_sr2[tail])
                self.w_ss[k] = math.fsum(self.r_ss[head] + self.r_ss[tail])
                self.w_ss2[k] = math.fsum(self.r_ss2[head] + self.r_ss2[tail])

    def _vector(self, t: int) -> FeatureVector:
        age = t - self.start
        rv = [0.0] * _NW
        values: list[float] = []
        for k, w in enumerate(WINDOWS):
            covered = w if w < age else age
            s2 = self.w_sr2[k]
            rv[k] = math.sqrt((s2 if s2 > 0.0 else 0.0) * RV_UNIT_SECONDS / covered)
            values.append(rv[k])
            values.append(self.w_n[k] / covered)
        b = t - 1
        last_mid = self.last_mid
        for q_i, k in enumerate(_DETAIL_IDX):
            w = WINDOWS[k]
            n = self.w_n[k]
            if n:
                mean = self.w_ss[k] / n
                var = self.w_ss2[k] / n - mean * mean
                std = math.sqrt(var) if var > 0.0 else 0.0
            else:
                mean, std = self.last_spread, 0.0
            nr = self.w_nr[k]
            ret_mean = self.w_sr[k] / nr if nr else 0.0
            hi, lo = -math.inf, math.inf
            maxq, minq = self.maxq[q_i], self.minq[q_i]
            if maxq:
                hi, lo = maxq[0][1], minq[0][1]
            entry = b - w
            if entry >= self.start:
                m = self.r_close[entry % _RING]
                if m > hi:
                    hi = m
                if m < lo:
                    lo = m
            values += [mean, std, ret_mean, (hi - lo) / last_mid * 1e4]
        values.append(_ratio(rv[_IDX10], rv[_IDX60]))
        values.append(_ratio(rv[_IDX60], rv[_IDX300]))
        values.append(t - self.last_time)
        return FeatureVector(self.product_id, float(t), tuple(values))


#: What `FeatureEngine.update` returns for no vector, a late tick and a duplicate delivery.
_NO_VECTORS: Final[list[FeatureVector]] = []
LATE: Final[list[FeatureVector]] = []
DUPLICATE: Final[list[FeatureVector]] = []


def _same(seen: Tick | None, tick: Tick) -> bool:
    """The same observation delivered twice (sequence numbers differ between connections)."""
    return (
        seen is not None
        and seen.price == tick.price
        and seen.best_bid == tick.best_bid
        and seen.best_ask == tick.best_ask
        and seen.volume_24h == tick.volume_24h
    )


def _ratio(short: float, long: float) -> float:
    return short / long if long > 0.0 else 1.0


class FeatureEngine:
    """Per-product feature state for any number of products; feed ticks in event-time order."""

    def __init__(self) -> None:
        self._states: dict[str, _ProductState] = {}
        self.stats = EngineStats()

    @property
    def products(self) -> tuple[str, ...]:
        return tuple(self._states)

    def update(self, tick: Tick) -> list[FeatureVector]:
        """Add one tick; return the vectors of the boundaries it closed (usually none or one).

        The list returned must not be modified: when empty it is shared, and it is `LATE` for
        a late tick and `DUPLICATE` for a duplicate delivery (compare by identity).
        """
        stats = self.stats
        stats.ticks += 1
        t = tick.event_time
        sec = math.floor(t)
        out = _NO_VECTORS
        state = self._states.get(tick.product_id)
        if state is not None:
            if sec < state.cur:
                stats.late_ticks += 1
                return LATE
            last = state.last_time
            if t > last:
                state.last_tick = tick
                if state.same_time is not None:
                    state.same_time = None
            elif t < last:
                stats.late_ticks += 1
                return LATE
            else:
                if _same(state.last_tick, tick):
                    stats.duplicate_ticks += 1
                    return DUPLICATE
                same = state.same_time
                if same is None:
                    same = state.same_time = []
                for seen in same:
                    if _same(seen, tick):
                        stats.duplicate_ticks += 1
                        return DUPLICATE
                if len(same) < _MAX_SAME_TIME:
                    same.append(tick)
            # The gap is measured from the last tick: a watermark may have moved ``cur`` on.
            if sec - state.last_sec > MAX_GAP_SECONDS:
                self._restart(tick.product_id)
                state = None
            elif sec > state.cur:
                out = []
                state.close_through(sec, out)
                stats.vectors += len(out)
        if state is None:
            state = self._states[tick.product_id] = _ProductState(tick.product_id, sec)
            state.last_tick = tick
        state.last_sec = sec
        bid, ask = tick.best_bid, tick.best_ask
        mid = 0.5 * (bid + ask)
        state.add(t, mid, (ask - bid) / mid * 1e4)
        return out

    def advance(self, product_id: str, watermark: float) -> list[FeatureVector]:
        """No tick of ``product_id`` before ``watermark`` will come: close the boundaries up to it.

        A product is never advanced more than MAX_GAP_SECONDS past its last tick; a tick after a
        longer silence restarts its history, exactly as without watermarks.
        """
        state = self._states.get(product_id)
        if state is None:
            return []
        boundary = min(math.floor(watermark), state.last_sec + MAX_GAP_SECONDS)
        if boundary <= state.cur:
            return []
        out: list[FeatureVector] = []
        state.close_through(boundary, out)
        self.stats.vectors += len(out)
        return out

    def advance_to(self, watermark: float) -> list[FeatureVector]:
        """:meth:`advance` every product to ``watermark``."""
        out: list[FeatureVector] = []
        for product_id in list(self._states):
            out += self.advance(product_id, watermark)
        return out

    def _restart(self, product_id: str) -> None:
        del self._states[product_id]
        self.stats.history_restarts += 1
        restarts = self.stats.by_product_restarts
        restarts[product_id] = restarts.get(product_id, 0) + 1
