"""Paths shared by every test tier."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
RECORDINGS = sorted((SHARED_DATA / "coinbase").glob("*.ndjson"))


@pytest.fixture(scope="session")
def recordings() -> list[Path]:
    if not RECORDINGS:
        pytest.fail(
            f"no recordings in {SHARED_DATA / 'coinbase'}: ../shared must sit beside the repo"
        )
    return RECORDINGS
