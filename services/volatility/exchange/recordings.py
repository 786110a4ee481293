"""Lazy reading of NDJSON recordings: the shared Coinbase sessions and our own captures.

Two line forms are accepted in the same file, so every consumer reads both alike:

* a verbatim exchange frame: ``{"channel":"ticker","timestamp":...,"events":[...]}``
* a capture line (see `volatility.exchange.capture`): ``{"received_at":<epoch s>,"frame":<frame>}``
  where ``<frame>`` is the frame text exactly as received.

Lines that cannot be used are counted by reason (the `FrameError` reasons, plus the reasons of
skipped ticker entries) into a caller's `Counter` and skipped; reading never stops on bad input.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from volatility.exchange.protocol import (
    NOT_JSON,
    Frame,
    FrameError,
    parse_frame,
    parse_ticker_entry,
)
from volatility.ticks import Tick

CAPTURE_PREFIX = b'{"received_at":'
_FRAME_KEY = b',"frame":'

PathLike = str | Path


@dataclass(frozen=True, slots=True)
class Record:
    """One non-blank line: where it came from, the frame text, and the capture receive time."""

    path: Path
    line_no: int
    frame: bytes
    received_at: float | None = None


def expand_paths(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    """Files in the order given; a directory stands for its ``*.ndjson`` files, sorted by name."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    out: list[Path] = []
    for item in items:
        path = Path(item)
        out.extend(sorted(path.glob("*.ndjson")) if path.is_dir() else [path])
    return out


def split_capture_line(line: bytes) -> tuple[float | None, bytes]:
    """(receive time, frame text) of a line; a plain frame line has no receive time."""
    if not line.startswith(CAPTURE_PREFIX):
        return None, line
    cut = line.find(_FRAME_KEY, len(CAPTURE_PREFIX))
    end = line.rfind(b"}")
    if cut < 0 or end <= cut:
        raise FrameError(NOT_JSON, "capture line without frame")
    try:
        received_at = float(line[len(CAPTURE_PREFIX) : cut])
    except ValueError:
        raise FrameError(NOT_JSON, "capture line receive time") from None
    return received_at, line[cut + len(_FRAME_KEY) : end]


def iter_records(
    paths: PathLike | Iterable[PathLike], malformed: Counter[str] | None = None
) -> Iterator[Record]:
    """Every non-blank line of the files, in file order, with capture wrapping removed."""
    for path in expand_paths(paths):
        with path.open("rb") as handle:
            for line_no, line in enumerate(handle, 1):
                stripped = line.strip()
                if not stripped:
                    continue
                try:
                    received_at, frame = split_capture_line(stripped)
                except FrameError as exc:
                    if malformed is not None:
                        malformed[exc.reason] += 1
                    continue
                yield Record(path, line_no, frame, received_at)


def iter_frames(
    paths: PathLike | Iterable[PathLike], malformed: Counter[str] | None = None
) -> Iterator[tuple[Record, Frame]]:
    """Parsed frames of every channel; bad lines and bad ticker entries land in ``malformed``."""
    counts: Counter[str] = Counter() if malformed is None else malformed
    for record in iter_records(paths, counts):
        try:
            frame = parse_frame(record.frame)
        except FrameError as exc:
            counts[exc.reason] += 1
            continue
        for reason in frame.rejected:
            counts[reason] += 1
        yield record, frame


def iter_ticks(
    paths: PathLike | Iterable[PathLike], malformed: Counter[str] | None = None
) -> Iterator[Tick]:
    """The ticks of the recordings in file order (non-ticker frames are skipped, not counted)."""
    for _record, frame in iter_frames(paths, malformed):
        yield from frame.ticks


class RecordedTick(Tick):
    """A tick with every field its recorded ticker entry carried (``fields``: the entry as
    recorded, numbers as the strings on the wire), so a replay can send them all."""

    fields: dict[str, object]


def iter_recorded_ticks(paths: PathLike | Iterable[PathLike]) -> Iterator[RecordedTick]:
    """Like `iter_ticks`, each tick with its recorded ticker entry."""
    for _record, frame in iter_frames(paths):
        if not frame.ticks:
            continue
        doc = orjson.loads(_record.frame)
        entries = [
            entry
            for event in doc["events"]
            for entry in event["tickers"]
            if _valid_entry(entry, frame.timestamp)
        ]
        for tick, entry in zip(frame.ticks, entries, strict=True):
            recorded = RecordedTick._make(tick)
            recorded.fields = entry
            yield recorded


def _valid_entry(entry: object, timestamp: float) -> bool:
    try:
        parse_ticker_entry(entry, timestamp, None)
    except FrameError:
        return False
    return True


def count_ticks(paths: PathLike | Iterable[PathLike]) -> dict[str, int]:
    """Ticks per product, for checks against a manifest."""
    counts: Counter[str] = Counter(tick.product_id for tick in iter_ticks(paths))
    return dict(counts)


def dumps_compact(obj: object) -> str:
    """The JSON form used when frames are written by this package (no spaces)."""
    return json.dumps(obj, separators=(",", ":"))
