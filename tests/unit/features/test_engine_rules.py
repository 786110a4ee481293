"""Cadence, warm-up, gaps and late ticks of the feature engine, on hand-made series."""

from __future__ import annotations

import math

import pytest

from volatility.features import FEATURE_NAMES, FeatureEngine
from volatility.features.spec import MAX_GAP_SECONDS, WARMUP_SECONDS
from volatility.ticks import Tick

T0 = 1_700_000_000.0


def tick(
    t: float, mid: float = 100.0, half_spread: float = 0.005, product: str = "BTC-USD"
) -> Tick:
    return Tick(product, T0 + t, mid, mid - half_spread, mid + half_spread)


def feed(engine: FeatureEngine, ticks: list[Tick]) -> list[tuple[float, dict[str, float]]]:
    out = []
    for t in ticks:
        out += [(v.event_time - T0, v.as_dict()) for v in engine.update(t)]
    return out


def test_first_vector_comes_after_warm_up_then_one_per_second() -> None:
    vectors = feed(FeatureEngine(), [tick(i * 0.5) for i in range(2 * 100)])
    times = [t for t, _ in vectors]
    assert times[0] == WARMUP_SECONDS
    assert times == [float(s) for s in range(WARMUP_SECONDS, 100)]


def test_quiet_seconds_still_get_vectors_and_a_flat_price_has_zero_volatility() -> None:
    ticks = [tick(i) for i in range(0, 61)] + [tick(70.2)]
    vectors = dict(feed(FeatureEngine(), ticks))
    assert sorted(vectors) == [float(s) for s in range(60, 71)]
    quiet = vectors[70.0]
    assert quiet["tick_rate_10s"] == pytest.approx(0.1)  # only the tick at 60 s in [60, 70)
    assert quiet["seconds_since_tick"] == pytest.approx(10.0)
    assert quiet["rv_60s"] == 0.0
    assert quiet["vol_ratio_10_60"] == 1.0
    assert quiet["spread_mean_10s"] == pytest.approx(0.01 / 100 * 1e4)


def test_realized_volatility_of_a_known_zigzag() -> None:
    # The mid alternates 100 and 100 * e^(1 bp): every return is +-1 bp.
    up = 100.0 * math.exp(1e-4)
    ticks = [tick(i * 0.5, up if i % 2 else 100.0) for i in range(2 * 62)]
    t, v = feed(FeatureEngine(), ticks)[1]  # boundary 61: window [1, 61) holds 120 returns
    assert t == 61.0
    assert v["rv_60s"] == pytest.approx(math.sqrt(120.0))
    assert v["rv_10s"] == pytest.approx(math.sqrt(20.0 * 6))  # 20 returns, scaled to 60 s
    assert v["ret_mean_60s"] == pytest.approx(0.0, abs=1e-9)
    assert v["range_10s"] == pytest.approx((up - 100.0) / ticks[121].mid * 1e4)


def test_a_long_silence_restarts_the_history() -> None:
    engine = FeatureEngine()
    before = feed(engine, [tick(i) for i in range(70)])
    after = feed(engine, [tick(70 + MAX_GAP_SECONDS + 1 + i) for i in range(70)])
    assert before and after
    assert engine.stats.history_restarts == 1
    restart = 70 + MAX_GAP_SECONDS + 1
    assert after[0][0] == restart + WARMUP_SECONDS


def test_late_ticks_are_counted_and_ignored() -> None:
    engine = FeatureEngine()
    feed(engine, [tick(i) for i in range(65)])
    assert feed(engine, [tick(10.5)]) == []
    assert engine.stats.late_ticks == 1


def test_advance_to_emits_quiet_boundaries_and_later_ticks_before_it_are_late() -> None:
    engine = FeatureEngine()
    feed(engine, [tick(i) for i in range(61)])
    emitted = [v.event_time - T0 for v in engine.advance_to(T0 + 63.5)]
    assert emitted == [61.0, 62.0, 63.0]
    assert engine.update(tick(62.9)) == []
    assert engine.stats.late_ticks == 1


def test_products_are_independent() -> None:
    engine = FeatureEngine()
    ticks = []
    for i in range(70):
        ticks.append(tick(i, product="BTC-USD"))
        ticks.append(tick(i + 5, mid=2000.0, product="ETH-USD"))
    vectors = feed(engine, ticks)
    assert {len(v) for _, v in vectors} == {len(FEATURE_NAMES)}
    assert engine.products == ("BTC-USD", "ETH-USD")


def test_a_duplicate_delivery_is_ignored_but_a_distinct_tick_at_the_same_time_counts() -> None:
    engine = FeatureEngine()
    feed(engine, [tick(i) for i in range(61)])
    again = tick(60)
    distinct = tick(60, mid=100.5)
    assert engine.update(again) == []
    assert engine.stats.duplicate_ticks == 1
    engine.update(distinct)
    engine.update(distinct)
    assert engine.stats.duplicate_ticks == 2
    (vec,) = engine.update(tick(61))
    assert vec.as_dict()["tick_rate_10s"] == pytest.approx(1.1)  # 10 ticks + the distinct one


def test_advance_closes_one_product_and_never_more_than_the_gap_past_its_last_tick() -> None:
    engine = FeatureEngine()
    feed(engine, [tick(i) for i in range(61)] + [tick(i, product="ETH-USD") for i in range(61)])
    assert [v.event_time - T0 for v in engine.advance("BTC-USD", T0 + 62.5)] == [61.0, 62.0]
    assert engine.advance("ETH-USD", T0 + 61.0) != []
    assert engine.advance("SOL-USD", T0 + 62.0) == []  # unknown: nothing to close
    capped = engine.advance("BTC-USD", T0 + 10_000.0)
    assert capped[-1].event_time - T0 == 60 + MAX_GAP_SECONDS
    # The next tick after the long silence restarts the history, as without watermarks.
    assert engine.update(tick(60 + MAX_GAP_SECONDS + 5)) == []
    assert engine.stats.history_restarts == 1


def test_vectors_depend_on_the_windows_not_on_how_long_the_history_is() -> None:
    import random

    from volatility.features.engine import CONVERGENCE_SECONDS

    rng = random.Random(3)
    mid, ticks = 100.0, []
    t = 0.0
    while t < 3000:
        t += rng.expovariate(4.0)
        if rng.random() < 0.01:
            t += rng.uniform(5, 50)  # quiet spells shorter than the gap
        mid *= math.exp(rng.gauss(0, 2e-4))
        ticks.append(tick(t, round(mid, 2), rng.choice((0.005, 0.01, 0.2))))
    cut = 1234.0
    long_run = dict(feed(FeatureEngine(), ticks))
    short_run = feed(FeatureEngine(), [k for k in ticks if k.event_time - T0 >= cut])
    late = [(v, vals) for v, vals in short_run if v >= cut + CONVERGENCE_SECONDS]
    assert late
    assert all(long_run[v] == vals for v, vals in late)  # bit for bit
