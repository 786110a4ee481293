"""The featurizer stage: its output is a function of the ticks topic alone, whatever the delivery
schedule; poison is set aside with a reason and stalls nothing; its state stays bounded."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stream_reference import reference_by_key, reference_vectors
from volatility.exchange.simulator.synthetic import synthetic_ticks
from volatility.features.spec import MAX_GAP_SECONDS
from volatility.stages import (
    CLOCK_SKEW,
    FUTURE_TIME,
    LATE,
    UNKNOWN_PRODUCT,
    FeaturizeStage,
    TracedVector,
)
from volatility.ticks import StreamRecord, Tick, Watermark
from volatility.watermarks import ExchangeClock

T0 = 1_775_000_000.0
PRODUCTS = ("BTC-USD", "ETH-USD", "SOL-USD")


def tick(t: float, product: str = "BTC-USD", mid: float = 100.0) -> Tick:
    return Tick(product, T0 + t, mid, mid - 0.01, mid + 0.01, None, 5.0 + t)


def run(stage: FeaturizeStage, records: list[StreamRecord], partition: int = 0) -> list[str]:
    """Feed records at offsets 0.. with ingest time = event time; return the rejection reasons
    (and assert that vectors equal the reference of the accepted records)."""
    items = [(partition, i, r, r.event_time) for i, r in enumerate(records)]
    stage.update_batch(items)
    return [r.reason for r in stage.rejected]


def market(seconds: float, products: tuple[str, ...] = ("BTC-USD", "ETH-USD")) -> list[Tick]:
    out: list[Tick] = []
    for k in synthetic_ticks(11, products, start_time=T0):
        if k.event_time - T0 >= seconds:
            return out
        out.append(k)
    return out


# -- poison: one test per rejection reason ------------------------------------------------------


def test_a_product_outside_the_configured_set_is_set_aside_and_gets_no_lane() -> None:
    stage = FeaturizeStage(products={"BTC-USD"})
    assert run(stage, [tick(1), tick(2, "DOGE-USD"), Watermark("DOGE-USD", T0 + 3)]) == [
        UNKNOWN_PRODUCT,
        UNKNOWN_PRODUCT,
    ]
    assert stage.products == ("BTC-USD",)


def test_a_record_stamped_far_ahead_of_its_own_ingest_time_is_set_aside() -> None:
    stage = FeaturizeStage(max_lead=300)
    items: list[tuple[int, int, StreamRecord, float]] = [
        (0, 0, tick(1), T0 + 1),
        (0, 1, tick(400), T0 + 2),  # 398 s ahead of when it entered the pipeline
        (0, 2, Watermark("BTC-USD", T0 + 1_000), T0 + 2),
        (0, 3, tick(3), math.nan),  # no ingest time: only the stream clock bounds it
    ]
    stage.update_batch(items)
    assert [(r.offset, r.reason) for r in stage.rejected] == [(1, FUTURE_TIME), (2, FUTURE_TIME)]


def test_a_tick_stamped_in_milliseconds_is_set_aside_and_stalls_nothing() -> None:
    ticks = market(900)  # longer than the checkpoint window
    poisoned: list[StreamRecord] = list(ExchangeClock().stream(ticks))
    at = next(i for i in range(len(poisoned) // 3, len(poisoned)) if type(poisoned[i]) is Tick)
    bad = poisoned[at]
    assert type(bad) is Tick
    poisoned.insert(at, bad._replace(event_time=bad.event_time * 1000))
    stage = FeaturizeStage(max_lead=None)
    items = [(0, i, r, math.nan) for i, r in enumerate(poisoned)]
    got = stage.update_batch(items)
    assert [(r.offset, r.reason) for r in stage.rejected] == [(at, CLOCK_SKEW)]
    clean = poisoned[:at] + poisoned[at + 1 :]
    assert [(v.product_id, v.event_time, v.values) for v, _ in got] == [
        (v.product_id, v.event_time, v.values) for v in reference_vectors(clean)
    ]
    # The partition's checkpoint moved on with the stream instead of pinning at the poison.
    checkpoint = stage.checkpoint(0)
    assert checkpoint is not None and checkpoint > 0


def test_a_tick_before_a_boundary_its_product_closed_is_set_aside_as_late() -> None:
    stage = FeaturizeStage()
    records: list[StreamRecord] = [tick(i) for i in range(61)]
    records += [Watermark("BTC-USD", T0 + 64.5), tick(63.2), tick(64.7)]
    assert run(stage, records) == [LATE]


def test_a_watermark_far_behind_a_poisoned_clock_resets_it() -> None:
    stage = FeaturizeStage(max_lead=None)
    poison = tick(5)._replace(event_time=(T0 + 5) * 1000)  # the product's first record
    records: list[StreamRecord] = [poison, tick(6), Watermark("BTC-USD", T0 + 6.5)]
    records += [tick(7 + i) for i in range(70)]
    assert run(stage, records) == [CLOCK_SKEW]  # tick(6), before the reset
    assert stage.clock_resets == ["BTC-USD"]
    got = stage.update_batch([(0, 999, tick(78), math.nan)])
    assert [v.event_time - T0 for v, _ in got] == [77.0, 78.0]  # the product goes on


def test_duplicate_deliveries_of_a_tick_are_ignored_not_dead_lettered() -> None:
    ticks = market(200)
    doubled = [k for t in ticks for k in (t, t._replace(sequence_num=7))]
    stage = FeaturizeStage()
    got = stage.update_batch([(0, i, k, math.nan) for i, k in enumerate(doubled)])
    assert stage.rejected == []
    assert stage.duplicate_ticks == len(ticks)
    assert [v for v, _ in got] == reference_vectors(ticks)


# -- bounded memory ---------------------------------------------------------------------------


def test_state_stays_flat_over_a_long_simulated_time() -> None:
    stage = FeaturizeStage(products=("BTC-USD", "ETH-USD"))
    clock = ExchangeClock(("BTC-USD", "ETH-USD"))
    rng = random.Random(5)
    sizes: list[int] = []
    offset = 0
    batch: list[tuple[int, int, StreamRecord, float]] = []
    hours = 8
    for k in synthetic_ticks(3, ("BTC-USD", "ETH-USD"), start_time=T0):
        if k.event_time - T0 > hours * 3600:
            break
        junk = Tick(f"X{rng.randrange(10**9)}", k.event_time, 1.0, 1.0, 1.0)  # never a lane
        records: list[StreamRecord] = [*clock.observe(k.event_time), k, junk]
        for record in records:
            batch.append((offset % 2, offset, record, record.event_time))
            offset += 1
        if len(batch) > 5000:
            stage.update_batch(batch)
            stage.rejected.clear()
            batch = []
            sizes.append(stage.state_size())
    hour = len(sizes) // hours
    # After the first hour (the checkpoint window filled), the state does not grow.
    assert max(sizes[hour:]) <= max(sizes[:hour]) + 2
    assert stage.products == ("BTC-USD", "ETH-USD")


# -- any delivery schedule gives the reference --------------------------------------------------


@dataclass
class _Consumer:
    """Kafka's at-least-once consumption of a partitioned log, driving one stage: positions,
    stored and committed offsets with their checkpoints, crashes and revocations."""

    log: dict[int, list[tuple[StreamRecord, float]]]
    stage: FeaturizeStage = field(default_factory=FeaturizeStage)
    position: dict[int, int] = field(default_factory=dict)
    stored: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    committed: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    published: list[TracedVector] = field(default_factory=list)

    def __post_init__(self) -> None:
        for p in self.log:
            self.assign(p)

    def assign(self, p: int) -> None:
        offset, checkpoint = self.committed.get(p, (0, None))
        if checkpoint is not None and checkpoint < offset:
            self.stage.rebuild(p, offset)
            self.position[p] = checkpoint
        else:
            self.position[p] = offset

    def batch(self, p: int, n: int, done: bool = True) -> None:
        start = self.position[p]
        records = self.log[p][start : start + n]
        items = [(p, start + i, r, ingest) for i, (r, ingest) in enumerate(records)]
        self.published += self.stage.update_batch(items)
        self.position[p] = start + len(records)
        if done and records:
            self.stored[p] = (self.position[p], self.stage.checkpoint(p))

    def commit(self) -> None:
        self.committed.update(self.stored)

    def crash(self) -> None:
        self.stage = FeaturizeStage()
        self.stored = dict(self.committed)
        for p in self.log:
            self.assign(p)

    def revoke(self, p: int) -> None:
        self.commit()
        self.stage.revoke([p])
        self.assign(p)  # the next owner (here: the same stage) rebuilds it

    def finished(self) -> bool:
        return all(self.position[p] >= len(records) for p, records in self.log.items())


@st.composite
def streams(draw: st.DrawFn) -> list[Tick]:
    """A few products with their own rates, quiet spells (some longer than the gap),
    duplicated deliveries and small out-of-order stamps."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    n_products = draw(st.integers(1, 3))
    seconds = draw(st.integers(300, 1500))
    ticks: list[Tick] = []
    for product in PRODUCTS[:n_products]:
        rate = rng.uniform(0.5, 6.0)
        t, mid = rng.uniform(0, 5), 100.0 + 100 * PRODUCTS.index(product)
        while t < seconds:
            t += rng.expovariate(rate)
            if rng.random() < 0.002:
                t += rng.choice((10.0, 45.0, MAX_GAP_SECONDS + 20.0))
            mid = round(mid * math.exp(rng.gauss(0, 3e-4)), 2)
            ticks.append(tick(t, product, mid))
            if rng.random() < 0.02:
                ticks.append(ticks[-1])  # a duplicate delivery
            if rng.random() < 0.01:
                ticks.append(tick(t - rng.uniform(0, 2), product, mid))  # out of order
    ticks.sort(key=lambda k: k.event_time)
    return ticks


actions = st.one_of(
    st.tuples(st.just("batch"), st.integers(1, 400)),
    st.tuples(st.just("lost"), st.integers(1, 400)),  # handled, never marked done
    st.tuples(st.just("commit"), st.just(0)),
    st.tuples(st.just("crash"), st.just(0)),
    st.tuples(st.just("revoke"), st.integers(0, 1)),
    st.tuples(st.just("stall"), st.floats(0, 1e6)),  # time passing: nothing to do with output
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.integers(1, 2), st.lists(actions, max_size=40))
def test_any_delivery_schedule_publishes_exactly_the_reference_vectors(
    ticks: list[Tick], partitions: int, schedule: list[tuple[str, float]]
) -> None:
    records = ExchangeClock().stream(ticks)
    log: dict[int, list[tuple[StreamRecord, float]]] = {p: [] for p in range(partitions)}
    ingest = T0
    for record in records:
        ingest = max(ingest, record.event_time) + 0.001
        log[PRODUCTS.index(record.product_id) % partitions].append((record, ingest))
    want = reference_by_key(r for p in log for r, _ in log[p])

    consumer = _Consumer(log)
    steps = 0
    while not consumer.finished():
        # The schedule repeats (so crashes land late in the stream too), then batches finish it.
        rounds = steps // len(schedule) if schedule else 99
        kind, arg = schedule[steps % len(schedule)] if rounds < 8 else ("batch", 300)
        steps += 1
        p = steps % partitions
        if kind == "batch":
            consumer.batch(p, int(arg))
            if steps % 3 == 0:
                consumer.commit()
        elif kind == "lost":
            consumer.batch(p, int(arg), done=False)
        elif kind == "commit":
            consumer.commit()
        elif kind == "crash":
            consumer.crash()
        elif kind == "revoke":
            consumer.revoke(int(arg) % partitions)

    copies: dict[tuple[str, float], set[tuple[tuple[float, ...], float]]] = defaultdict(set)
    for vec, trigger in consumer.published:
        copies[vec.product_id, vec.event_time].add((vec.values, trigger))
    missing, extra = sorted(set(want) - set(copies)), sorted(set(copies) - set(want))
    assert not missing and not extra, f"missing {missing[:3]}, extra {extra[:3]}"
    for key, seen in copies.items():
        assert len(seen) == 1, f"{key} published with {len(seen)} different values"
        ((values, _),) = seen
        assert values == want[key], key
