"""volatility: real-time detection of short-horizon volatility spikes in crypto markets."""

__version__ = "0.1.0"
