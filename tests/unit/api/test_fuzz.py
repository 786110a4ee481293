"""Schemathesis against the app's own OpenAPI, in process: no server error, no schema violation.

Positive and negative examples for every operation, bounded so that the run stays well under a
minute; bad input must be answered with a documented 4xx and a body matching its schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.unit.api.conftest import api_settings
from volatility.api.app import create_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES = 40


@pytest.fixture(scope="module")
def api_schema(model_dir: Path) -> Iterator[schemathesis.BaseSchema]:
    app = create_app(api_settings(model_dir, max_batch_rows=200))
    with TestClient(app):  # runs the lifespan: models loaded for the whole run
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        schema.config.checks.negative_data_rejection.expected_statuses = [
            "400", "404", "405", "413", "415", "422",
        ]  # fmt: skip
        yield schema


def _operations(
    schema: schemathesis.BaseSchema,
) -> list[schemathesis.APIOperation[Any, Any, Any, Any]]:
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    return operations


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_schema(
    api_schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    operations = _operations(api_schema)
    assert {op.path for op in operations} >= {"/predict", "/v2/models/{name}/infer"}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (operation.body or operation.query):
            continue  # nothing in a GET without parameters can be made invalid

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(checks=CHECKS)

        conforms()
