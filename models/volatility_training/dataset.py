"""Training datasets: recordings replayed through the one feature engine."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from volatility.exchange.recordings import iter_ticks
from volatility.features import FEATURE_NAMES, FeatureEngine
from volatility.ticks import Tick


@dataclass(frozen=True)
class Dataset:
    """Feature vectors in emission order, one row per product per event-time second.

    ``history`` numbers the uninterrupted histories: a file is a session with its own engine, and
    inside a file a product's history restarts after a silence longer than the engine allows.
    Inside one history the engine emits every whole second, so "the row at t + h of the same
    history" exists exactly when the history ran that long.
    """

    features: np.ndarray  # float64 [n, F]; values are float32-exact, as served
    times: np.ndarray  # float64 [n], event time (s)
    products: np.ndarray  # str [n]
    sessions: np.ndarray  # int64 [n], index into files
    histories: np.ndarray  # int64 [n]
    files: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.times)

    def column(self, name: str) -> np.ndarray:
        return np.asarray(self.features[:, FEATURE_NAMES.index(name)])

    def take(self, index: np.ndarray) -> Dataset:
        """The rows at ``index`` (integer positions or a boolean mask), files unchanged."""
        return Dataset(
            features=self.features[index],
            times=self.times[index],
            products=self.products[index],
            sessions=self.sessions[index],
            histories=self.histories[index],
            files=self.files,
        )


def build_dataset(paths: Iterable[Path], on_file: Callable[[Path], None] | None = None) -> Dataset:
    """Replay each file through a fresh engine (no state carries across sessions)."""
    files = tuple(Path(p) for p in paths)

    def sessions() -> Iterator[Iterable[Tick]]:
        for path in files:
            yield iter_ticks([path])
            if on_file is not None:
                on_file(path)

    return dataset_from_sessions(sessions(), files)


def dataset_from_sessions(
    sessions: Iterable[Iterable[Tick]], files: tuple[Path, ...] = ()
) -> Dataset:
    """Each session's ticks (in event-time order) through its own engine, rows in emission order."""
    rows: list[tuple[float, ...]] = []
    times: list[float] = []
    products: list[str] = []
    session_of: list[int] = []
    histories: list[int] = []
    history_ids: dict[tuple[int, str, int], int] = {}
    for session, ticks in enumerate(sessions):
        engine = FeatureEngine()
        restarts = engine.stats.by_product_restarts
        for tick in ticks:
            for vec in engine.update(tick):
                # update() restarts a product before it emits, so the current restart count
                # identifies the history that produced this vector.
                key = (session, vec.product_id, restarts.get(vec.product_id, 0))
                rows.append(vec.values)
                times.append(vec.event_time)
                products.append(vec.product_id)
                session_of.append(session)
                histories.append(history_ids.setdefault(key, len(history_ids)))
    features = np.array(rows, dtype=np.float64).reshape(-1, len(FEATURE_NAMES))
    return Dataset(
        # Models are served float32 vectors: train and label on exactly those values.
        features=features.astype(np.float32).astype(np.float64),
        times=np.array(times, dtype=np.float64),
        products=np.array(products, dtype=str),
        sessions=np.array(session_of, dtype=np.int64),
        histories=np.array(histories, dtype=np.int64),
        files=files,
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def iso_utc(t: float) -> str:
    """An event time as an ISO 8601 UTC string, to the second."""
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
