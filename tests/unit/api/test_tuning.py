"""Garbage-collector tuning: applied at start-up when asked for, left alone otherwise."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.api.conftest import api_settings
from volatility.api.app import create_app
from volatility.runtime import GC_THRESHOLDS


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_tuned_at_start_up(model_dir: Path) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    app = create_app(api_settings(model_dir, tune_gc=True))
    assert gc.get_freeze_count() == 0  # not before the models are loaded
    with TestClient(app):
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored_gc")
def test_untouched_by_default(model_dir: Path) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    with TestClient(create_app(api_settings(model_dir))):
        assert gc.get_threshold() == (700, 10, 10)
        assert gc.get_freeze_count() == 0
