"""Model directories and clients for the API tests.

The baseline is the shipped artifact. The ml variant is built here (a baseline-shaped graph with
other parameters and the ml contract), so the tests do not depend on a trained model and the two
variants give different scores for the same row.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from volatility.api.app import create_app
from volatility.api.settings import ApiSettings
from volatility.features.spec import FEATURE_NAMES
from volatility.names import VARIANTS, VariantName
from volatility.scoring.contract import model_path
from volatility.scoring.model import Model
from volatility.settings import DEFAULT_MODEL_DIR, ModelSettings

ML_VERSION = "test-ml-1"


def write_ml_model(path: Path, *, version: str = ML_VERSION) -> None:
    from volatility_training.baseline import build_baseline_onnx

    # The shipped baseline's contract with another variant, version and threshold.
    shipped = Model(model_path(DEFAULT_MODEL_DIR, "baseline")).contract
    contract = dataclasses.replace(shipped, variant="ml", version=version, threshold=0.4)
    onnx_model = build_baseline_onnx(mu=-1.0, sigma=0.5, metadata=contract.to_metadata())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onnx_model.SerializeToString())


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both variants: the shipped baseline and a small ml model."""
    root = tmp_path_factory.mktemp("models")
    shipped = model_path(DEFAULT_MODEL_DIR, "baseline")
    target = model_path(root, "baseline")
    target.parent.mkdir(parents=True)
    shutil.copyfile(shipped, target)
    write_ml_model(model_path(root, "ml"))
    return root


@pytest.fixture(scope="session")
def models(model_dir: Path) -> dict[VariantName, Model]:
    """Reference models, loaded apart from the API, to check its answers against."""
    return {v: Model(model_path(model_dir, v)) for v in VARIANTS}


def api_settings(
    model_dir: Path, variant: VariantName = "baseline", **overrides: Any
) -> ApiSettings:
    return ApiSettings(models=ModelSettings(variant=variant, dir=model_dir), **overrides)


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> VariantName:
    value: VariantName = request.param
    return value


@pytest.fixture(params=[True, False], ids=["fast-path", "routes"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    """Scoring answered by the ASGI fast path, or by the FastAPI routes: the same answers."""
    value: bool = request.param
    return value


@pytest.fixture
def client(model_dir: Path, variant: VariantName, fast_path: bool) -> Iterator[TestClient]:
    """A client of an app whose active variant is ``variant`` (both loaded)."""
    with TestClient(create_app(api_settings(model_dir, variant, fast_path=fast_path))) as c:
        yield c


def feature_rows(n: int, seed: int = 0) -> np.ndarray:
    """Positive rows spanning calm to volatile, float32-exact so JSON round trips keep them."""
    rng = np.random.default_rng(seed)
    return rng.lognormal(mean=0.0, sigma=2.0, size=(n, len(FEATURE_NAMES))).astype(np.float32)


def named(rows: np.ndarray) -> list[dict[str, float]]:
    return [{name: float(v) for name, v in zip(FEATURE_NAMES, row, strict=True)} for row in rows]
