"""POST /predict: one named feature vector or a batch of them, scored by the active model."""

from __future__ import annotations

from typing import Any, Final

from volatility.api.decode import InputError, parse_json, row_to_array, rows_to_array
from volatility.api.jsonio import dumps
from volatility.api.metrics import ApiMetrics
from volatility.api.registry import Served
from volatility.api.scorer import score

SINGLE: Final = "features"
BATCH_KEYS: Final = ("instances", "rows")
_ALL_KEYS: Final = (SINGLE, *BATCH_KEYS)


def _body_key(doc: Any) -> str:
    if type(doc) is not dict:
        raise InputError(422, "expected a JSON object with features, instances or rows", "body")
    if len(doc) == 1:
        key = next(iter(doc))
        if key in _ALL_KEYS:
            return str(key)
    present = [k for k in _ALL_KEYS if k in doc]
    if len(present) > 1:
        raise InputError(422, f"give only one of {', '.join(present)}", "body")
    unknown = [k for k in doc if k not in _ALL_KEYS]
    if unknown:
        raise InputError(422, "unknown field; expected features, instances or rows", unknown[0])
    raise InputError(422, "expected one of features, instances or rows", "body")


def predict(
    served: Served, body: bytes | bytearray, variant: str | None, max_rows: int, metrics: ApiMetrics
) -> bytes:
    """The JSON answer to a /predict body; raises InputError or NotLoaded."""
    doc = parse_json(body, max_rows)
    key = _body_key(doc)
    model = served.pick(variant)
    contract = model.contract
    if key == SINGLE:
        scores = score(model, row_to_array(doc[key], key), metrics, lambda _: SINGLE)
        return dumps(
            {
                "score": float(scores[0]),
                # Compared as float32, exactly as the streaming scorer and the batch path do.
                "spike": bool(scores[0] >= contract.threshold),
                "variant": contract.variant,
                "model_version": contract.version,
                "threshold": contract.threshold,
            }
        )
    rows = doc[key]
    if type(rows) is not list:
        raise InputError(422, "expected an array of feature objects", key)
    if len(rows) > max_rows:
        raise InputError(413, f"{len(rows)} rows exceed the limit of {max_rows}", key)
    scores = score(model, rows_to_array(rows, key), metrics, lambda i: f"{key}[{i}]")
    return dumps(
        {
            "scores": scores.tolist(),
            "spikes": (scores >= contract.threshold).tolist(),
            "count": len(scores),
            "variant": contract.variant,
            "model_version": contract.version,
            "threshold": contract.threshold,
        }
    )
