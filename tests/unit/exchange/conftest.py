"""Shared fixtures: the shared data folder, a simulator, and a client running in a thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from volatility.exchange.client import ClientConfig, ExchangeClient
from volatility.exchange.protocol import Frame

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
COINBASE = DATA / "coinbase"
PROTOCOL = DATA / "protocol"
SMALL_RECORDING = COINBASE / "20251113T183645Z_btc.ndjson"  # 1,790 BTC-USD ticks
WAIT_S = 20.0  # generous deadline for anything that should take well under a second


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not COINBASE.is_dir():
        pytest.fail(f"shared data missing at {DATA}")
    return DATA


def client_config(url: str, **overrides: object) -> ClientConfig:
    """Fast polling and short backoff so tests see reconnects quickly; seeded jitter."""
    settings: dict[str, object] = {
        "url": url,
        "products": ("BTC-USD", "ETH-USD"),
        "poll_interval": 0.05,
        "backoff_initial": 0.02,
        "backoff_max": 0.2,
        "seed": 1,
    }
    settings.update(overrides)
    return ClientConfig(**settings)  # type: ignore[arg-type]


@contextmanager
def running_client(
    config: ClientConfig, on_raw: Callable[[str, float], None] | None = None
) -> Iterator[tuple[ExchangeClient, list[Frame]]]:
    """A client reading in a thread; on exit it must stop within a few poll intervals."""
    client = ExchangeClient(config, on_raw=on_raw)
    frames: list[Frame] = []
    stop = threading.Event()
    thread = threading.Thread(target=client.run, args=(stop, frames.append), daemon=True)
    thread.start()
    try:
        yield client, frames
    finally:
        stop.set()
        thread.join(timeout=5.0)
        assert not thread.is_alive(), "client did not stop promptly"
