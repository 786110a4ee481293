"""The JSON documents on the bus: ticks, feature vectors and predictions.

Decoding validates: a message that cannot be used raises :class:`MessageError` with a stable
``reason``, which services count and send to the dead-letter topic.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from volatility.features import FEATURE_NAMES, FEATURE_SPEC_VERSION, FeatureVector
from volatility.ticks import Tick


class MessageError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Prediction:
    product_id: str
    event_time: float
    score: float
    spike: bool
    variant: str
    model_version: str
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "event_time": self.event_time,
            "score": self.score,
            "spike": self.spike,
            "variant": self.variant,
            "model_version": self.model_version,
            "threshold": self.threshold,
        }


def _load(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError("not_json", str(exc)) from exc
    if not isinstance(doc, dict):
        raise MessageError("not_object", type(doc).__name__)
    return doc


def _number(doc: dict[str, Any], key: str) -> float:
    if key not in doc:
        raise MessageError("missing_field", key)
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MessageError("non_numeric", key)
    value = float(value)
    if not math.isfinite(value):
        raise MessageError("non_finite", key)
    return value


def _string(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise MessageError("missing_field", key)
    return value


def encode_tick(tick: Tick) -> bytes:
    return json.dumps(
        {
            "product_id": tick.product_id,
            "event_time": tick.event_time,
            "price": tick.price,
            "best_bid": tick.best_bid,
            "best_ask": tick.best_ask,
            "sequence_num": tick.sequence_num,
            "volume_24h": tick.volume_24h,
        },
        separators=(",", ":"),
    ).encode()


def decode_tick(data: bytes) -> Tick:
    doc = _load(data)
    bid, ask = _number(doc, "best_bid"), _number(doc, "best_ask")
    price = _number(doc, "price")
    if min(bid, ask, price) <= 0:
        raise MessageError("non_positive_price", f"bid={bid} ask={ask} price={price}")
    if bid > ask:
        raise MessageError("crossed_book", f"bid={bid} > ask={ask}")
    seq = doc.get("sequence_num")
    vol = doc.get("volume_24h")
    return Tick(
        product_id=_string(doc, "product_id"),
        event_time=_number(doc, "event_time"),
        price=price,
        best_bid=bid,
        best_ask=ask,
        sequence_num=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        volume_24h=float(vol)
        if isinstance(vol, int | float) and not isinstance(vol, bool)
        else None,
    )


def encode_features(vec: FeatureVector) -> bytes:
    return json.dumps(
        {
            "product_id": vec.product_id,
            "event_time": vec.event_time,
            "spec": FEATURE_SPEC_VERSION,
            "features": vec.as_dict(),
        },
        separators=(",", ":"),
    ).encode()


def decode_features(data: bytes) -> FeatureVector:
    doc = _load(data)
    spec = doc.get("spec")
    if spec != FEATURE_SPEC_VERSION:
        raise MessageError("feature_spec_mismatch", f"spec {spec!r} != {FEATURE_SPEC_VERSION!r}")
    features = doc.get("features")
    if not isinstance(features, dict):
        raise MessageError("missing_field", "features")
    return FeatureVector(
        product_id=_string(doc, "product_id"),
        event_time=_number(doc, "event_time"),
        values=tuple(_number(features, name) for name in FEATURE_NAMES),
    )


def encode_prediction(pred: Prediction) -> bytes:
    return json.dumps(pred.as_dict(), separators=(",", ":")).encode()


def decode_prediction(data: bytes) -> Prediction:
    doc = _load(data)
    spike = doc.get("spike")
    if not isinstance(spike, bool):
        raise MessageError("missing_field", "spike")
    return Prediction(
        product_id=_string(doc, "product_id"),
        event_time=_number(doc, "event_time"),
        score=_number(doc, "score"),
        spike=spike,
        variant=_string(doc, "variant"),
        model_version=_string(doc, "model_version"),
        threshold=_number(doc, "threshold"),
    )
