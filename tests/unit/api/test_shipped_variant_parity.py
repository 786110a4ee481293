"""With the shipped models, both variants refuse the same inputs: a negative value in a feature
that is never negative is a 422 naming the row, whichever variant serves; the signed mean
returns may be negative."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.unit.api.conftest import api_settings, feature_rows, named
from volatility.api.app import create_app
from volatility.features.spec import FEATURE_NAMES
from volatility.names import VARIANTS, VariantName
from volatility.settings import DEFAULT_MODEL_DIR


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("feature", FEATURE_NAMES)
def test_both_variants_refuse_a_negative_feature_alike(variant: VariantName, feature: str) -> None:
    rows = named(feature_rows(3, seed=5))
    rows[1][feature] = -1.0
    with TestClient(create_app(api_settings(DEFAULT_MODEL_DIR, variant))) as client:
        answer = client.post("/predict", json={"instances": rows})
    if feature.startswith("ret_mean_"):
        assert answer.status_code == 200, answer.text
        assert answer.json()["count"] == 3
    else:
        assert answer.status_code == 422, answer.text
        assert "instances[1]" in answer.text
