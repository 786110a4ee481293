"""The spike label's default parameters (``volatility.scoring.target``), in a module that imports
nothing: command lines show them in ``--help`` without loading numpy."""

from __future__ import annotations

DEFAULT_HORIZON = 60
DEFAULT_QUANTILE = 0.9
DEFAULT_REGIME_SECONDS = 600
