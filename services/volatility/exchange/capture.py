"""Recording of verbatim exchange frames into rotating NDJSON files.

Line format (one frame per line, UTF-8)::

    {"received_at":1775345623.123456,"frame":<the frame text exactly as received>}

``received_at`` is the local wall-clock receive time (epoch seconds, UTC, microseconds). The
frame is spliced in verbatim rather than re-encoded, so the bytes the exchange sent are kept
(only a line break inside a frame, which JSON allows between tokens, becomes a space). The line
is itself JSON whenever the frame is; `volatility.exchange.recordings` reads these lines and the
shared recordings (bare frames, one per line) alike, frames that failed to parse included.

Files are named ``<prefix>-<UTC start>-<n>.ndjson``: start is the receive time of their first
line and n counts files, so name order is time order (``capture-20260404T211343Z-0000.ndjson``).
They are written as ``.ndjson.part`` until rotated or closed, so readers of a directory only see
complete files. A new file starts when the current one passes ``rotate_bytes`` or has been open
``rotate_seconds``. A write flushes when ``flush_interval`` has passed since the last flush (the
feed's heartbeats bring a write every second); rotation and close flush too.
Not thread-safe: one writer thread.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"


def capture_line(frame: str, received_at: float) -> str:
    if "\n" in frame or "\r" in frame:
        frame = frame.replace("\r", " ").replace("\n", " ")
    return f'{{"received_at":{received_at:.6f},"frame":{frame}}}\n'


class CaptureWriter:
    def __init__(
        self,
        out_dir: str | Path,
        *,
        prefix: str = "capture",
        rotate_bytes: int | None = 64 * 1024 * 1024,
        rotate_seconds: float | None = 3600.0,
        flush_interval: float = 1.0,
    ) -> None:
        if rotate_bytes is not None and rotate_bytes <= 0:
            raise ValueError("rotate_bytes must be positive")
        if rotate_seconds is not None and rotate_seconds <= 0:
            raise ValueError("rotate_seconds must be positive")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.flush_interval = flush_interval
        self.files: list[Path] = []  # completed files, in order
        self.lines = 0
        self._handle: IO[str] | None = None
        self._part: Path | None = None
        self._bytes = 0
        self._opened_at = 0.0
        self._flushed_at = 0.0

    @property
    def current(self) -> Path | None:
        """The file being written (its final name), if any."""
        return None if self._part is None else self._part.with_suffix("")

    def write(self, frame: str, received_at: float) -> None:
        now = time.monotonic()
        if self._handle is not None and self._due_rotation(now):
            self._finish()
        if self._handle is None:
            self._open(received_at, now)
        line = capture_line(frame, received_at)
        handle = self._handle
        if handle is None:  # _open always sets it; this keeps the type checker informed
            raise RuntimeError("capture file not open")
        handle.write(line)
        self._bytes += len(line.encode("utf-8")) if not line.isascii() else len(line)
        self.lines += 1
        if now - self._flushed_at >= self.flush_interval:
            handle.flush()
            self._flushed_at = now

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            self._flushed_at = time.monotonic()

    def close(self) -> None:
        if self._handle is not None:
            self._finish()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _due_rotation(self, now: float) -> bool:
        if self.rotate_bytes is not None and self._bytes >= self.rotate_bytes:
            return True
        return self.rotate_seconds is not None and now - self._opened_at >= self.rotate_seconds

    def _open(self, received_at: float, now: float) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(received_at))
        # A counter after the time keeps name order chronological within a second.
        index = len(self.files)
        final = self.out_dir / f"{self.prefix}-{stamp}-{index:04d}.ndjson"
        while final.exists() or final.with_name(final.name + PART_SUFFIX).exists():
            index += 1
            final = self.out_dir / f"{self.prefix}-{stamp}-{index:04d}.ndjson"
        self._part = final.with_name(final.name + PART_SUFFIX)
        self._handle = self._part.open("w", encoding="utf-8", newline="\n")
        self._bytes = 0
        self._opened_at = now
        self._flushed_at = now
        log.info("capturing to %s", final)

    def _finish(self) -> None:
        handle, part = self._handle, self._part
        self._handle = self._part = None
        if handle is None or part is None:
            return
        handle.close()
        final = part.with_suffix("")
        part.rename(final)
        self.files.append(final)
