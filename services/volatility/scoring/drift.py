"""Feature drift: population stability index of live vectors against the training distribution.

Training stores, per product and feature, the decile edges of the training rows and the share of
rows in each bin (`reference_from_features`, written into the model's metadata). Live vectors are
binned on the same edges; the last ``window`` of them per product give the live shares, and
PSI = sum over bins of (live - train) * ln(live / train), shares floored at ``EPS`` so an empty
bin is finite. Rule of thumb: below 0.1 stable, 0.1-0.25 moderate, above 0.25 a real shift.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BINS = 10
EPS = 1e-4
DEFAULT_WINDOW = 3600


@dataclass(frozen=True)
class Reference:
    """One product's training distribution: per feature, interior bin edges and bin shares."""

    edges: tuple[np.ndarray, ...]
    shares: tuple[np.ndarray, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "edges": [e.tolist() for e in self.edges],
            "shares": [s.tolist() for s in self.shares],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reference:
        edges = tuple(np.asarray(e, dtype=np.float64) for e in data["edges"])
        shares = tuple(np.asarray(s, dtype=np.float64) for s in data["shares"])
        if len(edges) != len(shares) or any(
            len(s) != len(e) + 1 for e, s in zip(edges, shares, strict=True)
        ):
            raise ValueError("a drift reference needs one more share than edges per feature")
        return cls(edges, shares)


def reference_from_features(features: np.ndarray, bins: int = BINS) -> Reference:
    """Decile edges (ties merged) of each column and the share of rows in each resulting bin."""
    edges: list[np.ndarray] = []
    shares: list[np.ndarray] = []
    x = np.asarray(features, dtype=np.float64)
    for column in x.T:
        inner = np.unique(np.quantile(column, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(inner, column, side="left"), minlength=len(inner) + 1)
        edges.append(inner)
        shares.append(counts / counts.sum())
    return Reference(tuple(edges), tuple(shares))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPS)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def bin_rows(reference: Reference, rows: np.ndarray) -> np.ndarray:
    """int [n, F]: the bin of each value on the reference's edges."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    return np.column_stack(
        [
            np.searchsorted(edges, rows[:, f], side="left")
            for f, edges in enumerate(reference.edges)
        ]
    )


class DriftMonitor:
    """Per product, the bins of its last ``window`` vectors, and their PSI per feature."""

    def __init__(self, references: Mapping[str, Reference], window: int = DEFAULT_WINDOW) -> None:
        self.references = dict(references)
        self.window = window
        self._recent: dict[str, deque[np.ndarray]] = {}
        self._counts: dict[str, list[np.ndarray]] = {}

    def add(self, product: str, values: Sequence[float] | np.ndarray) -> None:
        reference = self.references.get(product)
        if reference is None:
            return  # a product the model was not trained on has no reference
        bins = bin_rows(reference, np.asarray(values))[0]
        recent = self._recent.setdefault(product, deque())
        counts = self._counts.setdefault(
            product, [np.zeros(len(s), dtype=np.int64) for s in reference.shares]
        )
        for f, b in enumerate(bins.tolist()):
            counts[f][b] += 1
        recent.append(bins)
        if len(recent) > self.window:
            for f, b in enumerate(recent.popleft().tolist()):
                counts[f][b] -= 1

    def observed(self, product: str) -> int:
        return len(self._recent.get(product, ()))

    def psi(self, product: str) -> list[float]:
        """PSI per feature (in reference column order); empty until a vector has been seen."""
        counts = self._counts.get(product)
        if not counts:
            return []
        n = self.observed(product)
        reference = self.references[product]
        return [psi(reference.shares[f], c / n) for f, c in enumerate(counts)]


def references_of(distribution: Mapping[str, Any]) -> dict[str, Reference]:
    """The per-product references a model's contract carries (``training_distribution``)."""
    return {str(product): Reference.from_json(data) for product, data in distribution.items()}
