"""Batch decoding of named-feature rows: the fast fill accepts exactly what the slow checks do."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from volatility.api.decode import InputError, rows_to_array
from volatility.api.jsonio import loads
from volatility.features.spec import FEATURE_NAMES

N = len(FEATURE_NAMES)


def _row(start: float = 0.5) -> dict[str, Any]:
    return {name: start + i for i, name in enumerate(FEATURE_NAMES)}


def _with(**changes: Any) -> dict[str, Any]:
    return {**_row(), **changes}


def test_rows_come_out_in_spec_order_whatever_the_key_order() -> None:
    rows = [_row(0.25), dict(reversed(list(_row(7.0).items())))]
    expected = np.array([list(r.values()) for r in [_row(0.25), _row(7.0)]], dtype=np.float32)
    array = rows_to_array(rows, "instances")
    assert array.dtype == np.float32
    assert array.shape == (2, N)
    np.testing.assert_array_equal(array, expected)


def test_integers_zeros_and_ones_are_numbers() -> None:
    # 0 and 1 (int or float) compare equal to False and True: only the bools are refused.
    row = _with(rv_10s=0, rv_30s=1, rv_60s=0.0, rv_300s=1.0, range_10s=-0.0, range_30s=10**20)
    array = rows_to_array([row, _row()], "instances")
    assert array[0, FEATURE_NAMES.index("rv_30s")] == 1.0
    assert array[0, FEATURE_NAMES.index("rv_10s")] == 0.0
    assert array[0, FEATURE_NAMES.index("range_30s")] == np.float32(1e20)


def test_no_rows_is_an_empty_matrix() -> None:
    assert rows_to_array([], "instances").shape == (0, N)


def test_extreme_float32_values_are_accepted() -> None:
    largest = float(np.finfo(np.float32).max)
    array = rows_to_array([_with(rv_10s=largest, rv_30s=-largest)], "rows")
    assert np.isfinite(array).all()


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        (_with(rv_60s=True), "instances[1].rv_60s", "got boolean"),
        (_with(rv_60s=False), "instances[1].rv_60s", "got boolean"),
        (_with(rv_60s="1.5"), "instances[1].rv_60s", "got string"),
        (_with(rv_60s=None), "instances[1].rv_60s", "got null"),
        (_with(rv_60s=[1.0]), "instances[1].rv_60s", "got array"),
        (_with(rv_60s={"v": 1}), "instances[1].rv_60s", "got object"),
        (_with(rv_60s=1e39), "instances[1].rv_60s", "float32 range"),
        (_with(rv_60s=-(10**40)), "instances[1].rv_60s", "float32 range"),
        (_with(rv_60s=10**400), "instances[1].rv_60s", "float32 range"),
        (_with(rv_60s=float("inf")), "instances[1].rv_60s", "finite"),
        (_with(rv_60s=float("nan")), "instances[1].rv_60s", "finite"),
        (_with(extra=1.0), "instances[1].extra", "unknown feature"),
        (
            {k: v for k, v in _row().items() if k != "range_60s"},
            "instances[1].range_60s",
            "missing",
        ),
        ([1.0] * N, "instances[1]", "got array"),
        (list(FEATURE_NAMES), "instances[1]", "got array"),
        ("rv_10s", "instances[1]", "got string"),
        (3, "instances[1]", "got int"),
        (None, "instances[1]", "got null"),
    ],
)
def test_bad_row_is_named(row: Any, field: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        rows_to_array([_row(), row, _row()], "instances")
    assert caught.value.status == 422
    assert caught.value.field == field
    assert message in str(caught.value)


def test_first_bool_is_named_among_many_legitimate_zeros_and_ones() -> None:
    rows = [{name: float(i % 2) for name in FEATURE_NAMES} for i in range(50)]
    rows[37]["spread_std_30s"] = True
    with pytest.raises(InputError) as caught:
        rows_to_array(rows, "rows")
    assert caught.value.field == "rows[37].spread_std_30s"


def test_out_of_double_range_literal_is_named() -> None:
    # orjson refuses 1e400; the standard library's fallback decodes it to infinity.
    (decoded,) = loads(b'[{"rv_10s": 1e400}]')
    with pytest.raises(InputError) as caught:
        rows_to_array([_row(), {**_row(), **decoded}], "instances")
    assert caught.value.field == "instances[1].rv_10s"
