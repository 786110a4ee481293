"""The latest predictions per product, kept in memory for the embedded mode's view and API."""

from __future__ import annotations

import threading
from collections import deque

from volatility.messages import Prediction


class RecentPredictions:
    """Thread-safe: the consumer loop writes, the API and the terminal view read."""

    def __init__(self, keep: int = 200) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, Prediction] = {}
        self._spikes: deque[Prediction] = deque(maxlen=keep)

    def add(self, prediction: Prediction) -> None:
        with self._lock:
            self._latest[prediction.product_id] = prediction
            if prediction.spike:
                self._spikes.append(prediction)

    def latest(self) -> dict[str, Prediction]:
        with self._lock:
            return dict(self._latest)

    def spikes(self) -> list[Prediction]:
        with self._lock:
            return list(self._spikes)
