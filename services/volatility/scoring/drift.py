"""Feature drift: population stability index of live vectors against the training distribution.

Training stores, per product and feature, the decile edges of the training rows and the share of
rows in each bin (`reference_from_features`, written into the model's metadata). Live vectors are
binned on the same edges; the last ``window`` of them per product give the live shares, and
PSI = sum over bins of (live - train) * ln(live / train), shares floored at ``EPS`` so an empty
bin is finite. Rule of thumb: below 0.1 stable, 0.1-0.25 moderate, above 0.25 a real shift.

That rule of thumb assumes a stationary population; these features follow the market's regime,
and one hour of a single recorded session already sits at PSI 3-6 against the pooled training
data on the 300 s volatilities. So training also records, per feature, the largest PSI that any
``window`` of its own sessions shows against the reference (``window_psi_max``): drift beyond it
is a market the model has never seen, which is what the drift alert reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BINS = 10
EPS = 1e-4
DEFAULT_WINDOW = 3600
# Ten minutes of one product's vectors: the shortest stretch of a training session whose PSI
# counts towards the drift training spans (the shortest recorded sessions last 14 minutes), and
# the fewest live vectors whose PSI is reported, so that like is compared with like.
MIN_WINDOW_ROWS = 600


@dataclass(frozen=True)
class Reference:
    """One product's training distribution: per feature, interior bin edges and bin shares."""

    edges: tuple[np.ndarray, ...]
    shares: tuple[np.ndarray, ...]
    # Per feature, the largest PSI of a window of the training sessions themselves; empty for
    # a reference built without sessions.
    window_psi_max: tuple[float, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "edges": [e.tolist() for e in self.edges],
            "shares": [s.tolist() for s in self.shares],
            "window_psi_max": list(self.window_psi_max),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reference:
        edges = tuple(np.asarray(e, dtype=np.float64) for e in data["edges"])
        shares = tuple(np.asarray(s, dtype=np.float64) for s in data["shares"])
        if len(edges) != len(shares) or any(
            len(s) != len(e) + 1 for e, s in zip(edges, shares, strict=True)
        ):
            raise ValueError("a drift reference needs one more share than edges per feature")
        window_max = tuple(float(v) for v in data.get("window_psi_max", ()))
        if window_max and len(window_max) != len(edges):
            raise ValueError("a drift reference needs one window_psi_max per feature")
        return cls(edges, shares, window_max)


def reference_from_features(
    features: np.ndarray,
    bins: int = BINS,
    sessions: np.ndarray | None = None,
    window: int = DEFAULT_WINDOW,
) -> Reference:
    """Decile edges (ties merged) of each column and the share of rows in each resulting bin.

    With ``sessions`` (one id per row, rows in stream order), also the largest PSI against
    these shares of any stretch of one session, cut into near-equal windows of at most
    ``window`` rows: the drift the training data itself spans. Windows under
    ``MIN_WINDOW_ROWS`` are left out: a few rows always look drifted.
    """
    edges: list[np.ndarray] = []
    shares: list[np.ndarray] = []
    x = np.asarray(features, dtype=np.float64)
    for column in x.T:
        inner = np.unique(np.quantile(column, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(inner, column, side="left"), minlength=len(inner) + 1)
        edges.append(inner)
        shares.append(counts / counts.sum())
    reference = Reference(tuple(edges), tuple(shares))
    if sessions is None:
        return reference
    bins_of = bin_rows(reference, x)
    ids = np.asarray(sessions)
    worst = np.zeros(len(edges))
    for session in np.unique(ids):
        rows = np.flatnonzero(ids == session)
        for part in np.array_split(rows, -(-len(rows) // window)):
            if len(part) < MIN_WINDOW_ROWS:
                continue
            for f, share in enumerate(shares):
                counts = np.bincount(bins_of[part, f], minlength=len(share))
                worst[f] = max(worst[f], psi(share, counts / len(part)))
    return Reference(reference.edges, reference.shares, tuple(worst.tolist()))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPS)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def bin_rows(reference: Reference, rows: np.ndarray) -> np.ndarray:
    """int [n, F]: the bin of each value on the reference's edges."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    return np.column_stack(
        [np.searchsorted(edges, rows[:, f], side="left") for f, edges in enumerate(reference.edges)]
    )


class _Window:
    """The bins of a product's last ``size`` vectors (a ring) and their counts per feature."""

    def __init__(self, reference: Reference, size: int) -> None:
        self.bins = np.zeros((size, len(reference.edges)), dtype=np.int16)
        self.counts = [np.zeros(len(s), dtype=np.int64) for s in reference.shares]
        self.filled = 0
        self.head = 0


class DriftMonitor:
    """Per product, the bins of its last ``window`` vectors, and their PSI per feature once
    there are as many as the shortest stretch of training data it is compared with
    (``MIN_WINDOW_ROWS``, or the whole window if smaller): PSI over a few vectors is noise,
    and after a restart it would read as drift."""

    def __init__(self, references: Mapping[str, Reference], window: int = DEFAULT_WINDOW) -> None:
        self.references = dict(references)
        self.window = window
        self.min_rows = min(MIN_WINDOW_ROWS, window)
        self._windows: dict[str, _Window] = {}

    def add(self, product: str, values: Sequence[float] | np.ndarray) -> None:
        self.add_many(product, np.atleast_2d(np.asarray(values, dtype=np.float64)))

    def add_many(self, product: str, rows: np.ndarray) -> None:
        """Vectors of one product, oldest first (a batch costs one search per feature)."""
        reference = self.references.get(product)
        if reference is None or not len(rows):
            return  # a product the model was not trained on has no reference
        win = self._windows.get(product)
        if win is None:
            win = self._windows[product] = _Window(reference, self.window)
        bins = bin_rows(reference, rows)[-self.window :]
        for row in bins:
            if win.filled == self.window:
                for f, b in enumerate(win.bins[win.head].tolist()):
                    win.counts[f][b] -= 1
            else:
                win.filled += 1
            win.bins[win.head] = row
            for f, b in enumerate(row.tolist()):
                win.counts[f][b] += 1
            win.head = (win.head + 1) % self.window

    def observed(self, product: str) -> int:
        win = self._windows.get(product)
        return win.filled if win is not None else 0

    def psi(self, product: str) -> list[float]:
        """PSI per feature (in reference column order); empty until ``min_rows`` vectors."""
        win = self._windows.get(product)
        if win is None or win.filled < self.min_rows:
            return []
        reference = self.references[product]
        return [psi(reference.shares[f], c / win.filled) for f, c in enumerate(win.counts)]


def references_of(distribution: Mapping[str, Any]) -> dict[str, Reference]:
    """The per-product references a model's contract carries (``training_distribution``)."""
    return {str(product): Reference.from_json(data) for product, data in distribution.items()}
