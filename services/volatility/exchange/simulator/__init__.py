"""A local stand-in for the exchange: replayed or synthetic ticks over the real protocol."""

from volatility.exchange.simulator.server import (
    SimulatorHandle,
    SimulatorStats,
    TimestampMode,
    start_simulator,
)
from volatility.exchange.simulator.sources import TickSource, replay_source, synthetic_source

__all__ = [
    "SimulatorHandle",
    "SimulatorStats",
    "TickSource",
    "TimestampMode",
    "replay_source",
    "start_simulator",
    "synthetic_source",
]
