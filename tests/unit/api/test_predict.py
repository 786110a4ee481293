"""POST /predict answers what the model computes, for one row and for batches, both variants."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.unit.api.conftest import feature_rows, named
from volatility.names import VARIANTS, VariantName
from volatility.scoring.model import Model


def test_single_row_scores_like_the_model(
    client: TestClient, variant: VariantName, models: dict[VariantName, Model]
) -> None:
    rows = feature_rows(1)
    response = client.post("/predict", json={"features": named(rows)[0]})
    assert response.status_code == 200, response.text
    body = response.json()
    model = models[variant]
    expected = float(model.score(rows)[0])
    assert body["score"] == pytest.approx(expected, abs=1e-7)
    assert body["spike"] is bool(expected >= model.contract.threshold)
    assert body["variant"] == variant
    assert body["model_version"] == model.contract.version
    assert body["threshold"] == model.contract.threshold


@pytest.mark.parametrize("key", ["instances", "rows"])
def test_batch_scores_in_request_order(
    client: TestClient, variant: VariantName, models: dict[VariantName, Model], key: str
) -> None:
    rows = feature_rows(257, seed=3)
    response = client.post("/predict", json={key: named(rows)})
    assert response.status_code == 200, response.text
    body = response.json()
    model = models[variant]
    expected = model.score(rows)
    np.testing.assert_allclose(body["scores"], expected, atol=1e-7)
    assert body["spikes"] == (expected >= model.contract.threshold).tolist()
    assert body["count"] == len(rows)
    assert body["variant"] == variant
    # The rows span both sides of the threshold, so the flags are a real check.
    assert 0 < sum(body["spikes"]) < len(rows)


def test_feature_order_in_the_body_does_not_matter(
    client: TestClient, variant: VariantName, models: dict[VariantName, Model]
) -> None:
    rows = feature_rows(1, seed=5)
    shuffled = dict(reversed(list(named(rows)[0].items())))
    body = client.post("/predict", json={"features": shuffled}).json()
    assert body["score"] == pytest.approx(float(models[variant].score(rows)[0]), abs=1e-7)


def test_integers_are_numbers(client: TestClient) -> None:
    row = dict.fromkeys(named(feature_rows(1))[0], 1)
    response = client.post("/predict", json={"features": row})
    assert response.status_code == 200, response.text


def test_empty_batch_is_an_empty_answer(client: TestClient, variant: VariantName) -> None:
    response = client.post("/predict", json={"instances": []})
    assert response.status_code == 200
    body = response.json()
    assert (body["scores"], body["spikes"], body["count"], body["variant"]) == ([], [], 0, variant)


@pytest.mark.parametrize("asked", VARIANTS)
def test_variant_query_picks_a_loaded_model(
    client: TestClient, models: dict[VariantName, Model], asked: VariantName
) -> None:
    rows = feature_rows(3, seed=9)
    response = client.post(f"/predict?variant={asked}", json={"instances": named(rows)})
    body = response.json()
    assert body["variant"] == asked
    np.testing.assert_allclose(body["scores"], models[asked].score(rows), atol=1e-7)


def test_batch_at_the_limit_is_accepted(client: TestClient) -> None:
    rows = named(feature_rows(10_000, seed=1))
    response = client.post("/predict", json={"rows": rows})
    assert response.status_code == 200
    assert response.json()["count"] == 10_000
