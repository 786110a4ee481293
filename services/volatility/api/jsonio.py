"""JSON in and out with orjson (several times faster than the standard library).

NaN and Infinity are rejected on input; output never holds them (scores are probabilities).
orjson's errors give only a position, so a body it rejects is decoded once more with the standard
library: its error names the offending literal (``NaN is not a JSON number``), and a number out of
double range (``1e400``), which orjson refuses, decodes to infinity so that validation rejects it
naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NoReturn

import orjson

BACKEND = "orjson"


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


_explain = json.JSONDecoder(parse_constant=_reject_constant)

dumps: Callable[[Any], bytes] = orjson.dumps


def loads(body: bytes | bytearray) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            return _explain.decode(body.decode("utf-8", errors="replace"))
        except RecursionError:
            raise exc from None  # nesting too deep for the stdlib too: orjson's error stands
