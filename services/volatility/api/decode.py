"""Request bodies straight to float32 arrays, rejecting bad input with a message naming the field.

The common case (well-formed input) takes a few C-level passes over the decoded JSON (for a batch:
one ``itemgetter`` per row, one ``array('d')`` of all values, one finiteness check). Only when one
of those fails does a slow pass look for the first offending field to name it.
"""

from __future__ import annotations

import itertools
import math
from array import array
from operator import itemgetter
from typing import Any, Final

import numpy as np

from volatility.api.jsonio import loads
from volatility.features.spec import FEATURE_NAMES

N_FEATURES: Final = len(FEATURE_NAMES)
# Largest magnitude that survives the cast to float32 without becoming infinite.
FLOAT32_MAX: Final = float(np.finfo(np.float32).max)

_NUMBER_TYPES: Final = frozenset({float, int})
_row_values = itemgetter(*FEATURE_NAMES)
_KNOWN: Final = frozenset(FEATURE_NAMES)
_ROW_SIZE: Final = frozenset({N_FEATURES})
_flatten = itertools.chain.from_iterable
_SMALL: Final = 4 * N_FEATURES


class InputError(Exception):
    """Bad input: ``status`` is 413, 415 or 422, ``field`` the JSON path at fault (if any)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.status = status
        self.field = field


def check_content_type(value: str | None, *, missing_ok: bool = False) -> None:
    """415 unless the body is declared JSON (or, where ``missing_ok``, not declared at all)."""
    if value is None and missing_ok:
        return
    media = (value or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        shown = value if value else "none"
        raise InputError(415, f"content-type must be application/json, got {shown}")


# Slack for the brackets and commas of a request's envelope (keys, shape, id, parameters).
_ENVELOPE: Final = 64


def check_structure(body: bytes | bytearray, max_rows: int) -> None:
    """413 before parsing when the body holds more JSON values than ``max_rows`` rows can.

    Decoding allocates per value (an empty ``[]`` costs Python 56 bytes for 3 bytes of JSON), so
    a body within the byte limit could otherwise cost tens of times its size. A row is one
    object or array holding ``N_FEATURES`` values: counting brackets and commas (a C-level scan,
    strings included, so an upper bound) caps the values a body can hold before any is built.
    """
    containers = body.count(b"{") + body.count(b"[")
    if containers > max_rows + _ENVELOPE:
        raise InputError(
            413,
            f"{containers} arrays and objects: more than a request of {max_rows} rows holds",
            "body",
        )
    values = body.count(b",")
    if values > max_rows * N_FEATURES + _ENVELOPE:
        raise InputError(
            413, f"{values} values: more than a request of {max_rows} rows holds", "body"
        )


def parse_json(body: bytes | bytearray, max_rows: int) -> Any:
    if not body:
        raise InputError(422, "request body is empty; expected a JSON object", "body")
    check_structure(body, max_rows)
    try:
        return loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(422, f"not valid JSON: {exc}", "body") from None


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _check_number(value: object, field: str) -> None:
    """Raise for the first value the fast path refused (wrong type, non-finite, out of range)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(422, f"expected a number, got {_describe(value)}", field)
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(422, "must be finite", field)
    if abs(value) > FLOAT32_MAX:
        try:
            shown = f"{float(value):.6g}"
        except OverflowError:
            shown = "the value"
        raise InputError(422, f"{shown} is outside the float32 range", field)


def _diagnose_row(row: object, field: str) -> None:
    if not isinstance(row, dict):
        raise InputError(422, f"expected an object of features, got {_describe(row)}", field)
    unknown = [k for k in row if k not in _KNOWN]
    if unknown:
        raise InputError(422, "unknown feature", f"{field}.{unknown[0]}")
    missing = [n for n in FEATURE_NAMES if n not in row]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(422, f"missing feature{more}", f"{field}.{missing[0]}")
    for name in FEATURE_NAMES:
        _check_number(row[name], f"{field}.{name}")


def _to_float32(values: list[Any], count: int) -> np.ndarray | None:
    """The values as float32 [count, F], or None if any is not a finite number in range."""
    if len(values) <= _SMALL:
        # A few values (a single row): checked in Python, then converted without overflow, which
        # costs less than NumPy's error-state switching and a reduction.
        if not set(map(type, values)) <= _NUMBER_TYPES:  # bool and str would convert silently
            return None
        try:
            if not values:
                return np.empty((count, N_FEATURES), dtype=np.float32)
            if not math.isfinite(sum(values)) or max(map(abs, values)) > FLOAT32_MAX:
                return None
        except OverflowError:  # an integer beyond float64
            return None
        return np.array(values, dtype=np.float32).reshape(count, N_FEATURES)
    return _doubles_to_float32(values, count)


def _doubles_to_float32(values: list[Any], count: int) -> np.ndarray | None:
    """Many values in a few C-level passes.

    ``array('d')`` takes exactly ints and floats from what JSON decodes to (str, None, list and
    dict raise TypeError, integers beyond double range OverflowError), except bools: True and
    False become 1.0 and 0.0, so only cells holding exactly 0 or 1 need their type looked at.
    """
    try:
        doubles = np.frombuffer(array("d", values), dtype=np.float64)
    except (TypeError, OverflowError):
        return None
    suspects = np.flatnonzero((doubles == 0.0) | (doubles == 1.0))
    if len(suspects) and bool in set(map(type, _picks(values, suspects))):
        return None
    with np.errstate(over="ignore"):
        array32 = doubles.astype(np.float32)  # beyond float32 range -> inf, refused just below
    # One reduction instead of isfinite + all: a float64 sum of float32 values cannot overflow,
    # so it is finite exactly when every value is.
    if not math.isfinite(array32.sum(dtype=np.float64)):
        return None
    return array32.reshape(count, N_FEATURES)


def _fill(rows: list[Any]) -> np.ndarray | None:
    """Rows as float32 [n, F] in a few C-level passes, or None if any row or value is refused."""
    try:
        values = list(_flatten(map(_row_values, rows)))  # KeyError: missing; TypeError: no dict
    except (KeyError, TypeError):
        return None
    if rows and set(map(len, rows)) != _ROW_SIZE:  # every feature present: a larger row has extras
        return None
    return _doubles_to_float32(values, len(rows))


def _picks(values: list[Any], at: np.ndarray) -> list[Any]:
    return [values[i] for i in at.tolist()]


def rows_to_array(rows: list[Any], field: str) -> np.ndarray:
    """Named-feature objects (every feature, nothing else) as float32 [n, F] in spec order."""
    array32 = _fill(rows)
    if array32 is not None:
        return array32
    for i, row in enumerate(rows):
        _diagnose_row(row, f"{field}[{i}]")
    raise AssertionError("unreachable: the fast path refused rows the slow path accepts")


def row_to_array(row: object, field: str) -> np.ndarray:
    """One named-feature object as float32 [1, F]."""
    if isinstance(row, dict) and len(row) == N_FEATURES:
        try:
            array = _to_float32(list(_row_values(row)), 1)
        except KeyError:
            array = None
        if array is not None:
            return array
    _diagnose_row(row, field)
    raise AssertionError("unreachable: the fast path refused a row the slow path accepts")


def tensor_rows(shape: object, field: str, max_rows: int) -> int:
    """The row count of an Open Inference Protocol tensor shape, which must be [n, F]."""
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise InputError(422, f"must be [n, {N_FEATURES}] with n >= 0", f"{field}.shape")
    rows, cols = shape
    if cols != N_FEATURES:
        raise InputError(
            422, f"second dimension must be {N_FEATURES}, got {cols}", f"{field}.shape"
        )
    if rows > max_rows:
        raise InputError(413, f"{rows} rows exceed the limit of {max_rows}", f"{field}.shape")
    return int(rows)


def binary_to_array(buffer: bytes | bytearray, offset: int, rows: int, field: str) -> np.ndarray:
    """``rows`` rows of little-endian float32 at ``offset`` (the binary tensor extension)."""
    array = np.frombuffer(buffer, dtype="<f4", count=rows * N_FEATURES, offset=offset)
    if not array.flags.aligned:
        array = array.copy()
    if not math.isfinite(array.sum(dtype=np.float64)):
        at = int(np.flatnonzero(~np.isfinite(array))[0])
        row, col = divmod(at, N_FEATURES)
        raise InputError(422, f"must be finite (row {row}, column {col})", f"{field} binary data")
    return array.astype(np.float32, copy=False).reshape(rows, N_FEATURES)


def tensor_to_array(data: object, shape: object, field: str, max_rows: int) -> np.ndarray:
    """An Open Inference Protocol tensor (row-major ``data``, flat or nested) as float32 [n, F]."""
    rows = tensor_rows(shape, field, max_rows)
    if not isinstance(data, list):
        raise InputError(422, f"expected an array, got {_describe(data)}", f"{field}.data")
    nested = bool(data) and type(data[0]) is list
    if nested:
        if len(data) != rows:
            raise InputError(422, f"{len(data)} rows do not match shape {shape}", f"{field}.data")
        for i, row in enumerate(data):
            if type(row) is not list or len(row) != N_FEATURES:
                raise InputError(422, f"expected {N_FEATURES} numbers", f"{field}.data[{i}]")
        flat: list[Any] = list(itertools.chain.from_iterable(data))
    else:
        flat = data
        if len(flat) != rows * N_FEATURES:
            raise InputError(422, f"{len(flat)} values do not match shape {shape}", f"{field}.data")
    array = _to_float32(flat, rows)
    if array is not None:
        return array
    for i, value in enumerate(flat):
        row, col = divmod(i, N_FEATURES)
        _check_number(value, f"{field}.data[{row}][{col}]" if nested else f"{field}.data[{i}]")
    raise AssertionError("unreachable: the fast path refused values the slow path accepts")
