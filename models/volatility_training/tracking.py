"""Optional experiment tracking: MLflow is used only when MLFLOW_TRACKING_URI is set."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TRACKING_ENV = "MLFLOW_TRACKING_URI"


def log_run(
    params: Mapping[str, str | int | float], metrics: Mapping[str, float], artifacts: Path
) -> bool:
    """Record a training run if a tracking server is configured; return whether it was."""
    uri = os.environ.get(TRACKING_ENV)
    if not uri:
        return False
    # Optional dependency, installed only where tracking is configured.
    mlflow: Any = importlib.import_module("mlflow")

    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_name="volatility-train"):
        mlflow.log_params(dict(params))
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})
        mlflow.log_artifacts(str(artifacts))
    return True
