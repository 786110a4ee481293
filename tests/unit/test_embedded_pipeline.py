"""`volatility up` end to end: simulator -> client -> bus -> featurizer -> consumer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.stream_reference import reference_vectors, replayed
from volatility.exchange.recordings import iter_ticks
from volatility.exchange.simulator.server import start_simulator
from volatility.exchange.simulator.sources import replay_source
from volatility.local import EmbeddedPipeline
from volatility.scoring.model import Model
from volatility.settings import DEFAULT_MODEL_DIR


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    idle = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        idle.wait(0.05)
    return True


@pytest.fixture
def recording(recordings: list[Path]) -> Path:
    return next(p for p in recordings if p.name.startswith("20251114T005339Z"))


def test_replayed_recording_yields_the_same_predictions_as_the_engine_and_model(
    recording: Path,
) -> None:
    model = Model.load(DEFAULT_MODEL_DIR, "baseline")
    # At full speed the simulator's heartbeats repeat its last tick's time: the ingest's
    # watermarks are those a replay derives from the ticks.
    expected = reference_vectors(replayed(iter_ticks([recording])))
    want = model.score(np.array([v.values for v in expected], dtype=np.float32))

    sim = start_simulator(replay_source([recording]), speed=None, timestamps="keep")
    got: list[tuple[float, float]] = []
    pipeline = EmbeddedPipeline(
        url=sim.url,
        products=("BTC-USD",),
        model_dir=DEFAULT_MODEL_DIR,
        variant="baseline",
        tick_source="replay",
        api_port=None,
        on_prediction=lambda p: got.append((p.event_time, p.score)),
        max_skew=None,  # recorded timestamps are months old
    )
    try:
        pipeline.start()
        assert wait_until(lambda: len(got) >= len(expected), timeout=120), (
            f"{len(got)} of {len(expected)} predictions"
        )
    finally:
        pipeline.stop()
        sim.stop()
    assert [t for t, _ in got] == [v.event_time for v in expected]
    np.testing.assert_allclose([s for _, s in got], want, rtol=1e-6)
    assert pipeline.recent.latest()["BTC-USD"].event_time == expected[-1].event_time
