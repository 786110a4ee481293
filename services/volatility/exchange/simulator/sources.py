"""Where the simulated exchange gets its ticks: a replay of recordings or the synthetic market.

A source is a recipe, not a stream: every connection opens its own time-ordered iterator, so two
clients (or one client before and after a reconnect) see the same market from the same clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from volatility.exchange.recordings import (
    PathLike,
    RecordedTick,
    expand_paths,
    iter_recorded_ticks,
)
from volatility.exchange.simulator.synthetic import synthetic_ticks
from volatility.names import DEFAULT_PRODUCTS
from volatility.ticks import Tick

# Recordings are sessions months apart; a silence longer than this is cut to REPLAY_JOIN_S.
REPLAY_MAX_GAP_S = 120.0
REPLAY_JOIN_S = 1.0
DEFAULT_SYNTHETIC_START = 1_775_000_000.0  # 2026-03-31T23:33:20Z, any fixed origin will do


@dataclass(frozen=True, slots=True)
class TickSource:
    """``open()`` gives a fresh iterator of ticks ordered by event time, starting at start_time,
    of the ``products`` (every one of them occurs in it)."""

    name: str
    start_time: float
    open: Callable[[], Iterator[Tick]]
    products: frozenset[str]


def synthetic_source(
    seed: int,
    products: Sequence[str] = DEFAULT_PRODUCTS,
    start_time: float = DEFAULT_SYNTHETIC_START,
) -> TickSource:
    chosen = tuple(products)
    return TickSource(
        f"synthetic(seed={seed})",
        start_time,
        lambda: synthetic_ticks(seed, chosen, start_time),
        frozenset(chosen),
    )


def _joined(paths: list[Path]) -> Iterator[Tick]:
    """Ticks of all files on one continuous clock (long silences cut short), each with the
    fields its recording carried."""
    shift = 0.0
    last: float | None = None
    for tick in iter_recorded_ticks(paths):
        t = tick.event_time + shift
        if last is not None and (t - last > REPLAY_MAX_GAP_S or t < last):
            shift += last + REPLAY_JOIN_S - t
            t = last + REPLAY_JOIN_S
        last = t
        yield _moved(tick, t)


def _moved(tick: Tick, event_time: float) -> Tick:
    moved = RecordedTick._make((tick.product_id, event_time, *tick[2:]))
    moved.fields = getattr(tick, "fields", {})
    return moved


def _looped(paths: list[Path]) -> Iterator[Tick]:
    shift = 0.0
    while True:
        last: float | None = None
        first: float | None = None
        for tick in _joined(paths):
            if first is None:
                first = tick.event_time
            last = tick.event_time + shift
            yield _moved(tick, last)
        if first is None or last is None:
            return
        shift = last + REPLAY_JOIN_S - first


def replay_source(
    paths: PathLike | Iterable[PathLike], products: Sequence[str] | None = None, loop: bool = False
) -> TickSource:
    """Replay NDJSON recordings (files or directories), optionally only some products, looping."""
    files = expand_paths(paths)
    if not files:
        raise ValueError("no recording files given")
    wanted = frozenset(products) if products else None

    def filtered(stream: Iterator[Tick]) -> Iterator[Tick]:
        return stream if wanted is None else (t for t in stream if t.product_id in wanted)

    # One pass without looping (a loop over nothing would never end) finds the products served.
    start: float | None = None
    found: set[str] = set()
    for tick in filtered(_joined(files)):
        start = tick.event_time if start is None else start
        found.add(tick.product_id)
    if start is None:
        raise ValueError("the recordings hold no ticks of the chosen products")

    def open_stream() -> Iterator[Tick]:
        return filtered(_looped(files) if loop else _joined(files))

    return TickSource(f"replay({len(files)} files)", start, open_stream, frozenset(found))


def take_seconds(ticks: Iterable[Tick], seconds: float) -> list[Tick]:
    """The ticks of the first ``seconds`` of event time of a stream (for tests and calibration)."""
    iterator = iter(ticks)
    head = next(iterator, None)
    if head is None:
        return []
    end = head.event_time + seconds
    return [head, *itertools.takewhile(lambda t: t.event_time < end, iterator)]
