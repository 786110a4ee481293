"""Windowed features of the tick stream: one implementation for streaming and training."""

from volatility.features.engine import EngineStats, FeatureEngine, FeatureVector
from volatility.features.spec import FEATURE_NAMES, FEATURE_SPEC_VERSION, WINDOWS

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_SPEC_VERSION",
    "WINDOWS",
    "EngineStats",
    "FeatureEngine",
    "FeatureVector",
]
