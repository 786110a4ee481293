"""Bus documents: round trips, batch decoding equal to single decoding, and rejection reasons."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from volatility.features import FEATURE_NAMES, FeatureVector
from volatility.messages import (
    MessageError,
    Prediction,
    Shadow,
    decode_features,
    decode_features_batch,
    decode_prediction,
    decode_tick,
    decode_tick_batch,
    encode_features,
    encode_prediction,
    encode_predictions,
    encode_tick,
)
from volatility.ticks import Tick

TICK = Tick("BTC-USD", 1_775_000_000.25, 67000.5, 67000.0, 67001.0, 42, 1234.5)
VECTOR = FeatureVector(
    "ETH-USD", 1_775_000_060.0, tuple(0.5 + i for i in range(len(FEATURE_NAMES)))
)


def test_tick_round_trip_with_ingest_time() -> None:
    assert decode_tick(encode_tick(TICK)) == TICK
    ((tick, ingest),) = decode_tick_batch([encode_tick(TICK, ingest_time=5.5)])  # type: ignore[misc]
    assert tick == TICK and ingest == 5.5


def test_features_round_trip_at_float32_precision() -> None:
    vec = decode_features(encode_features(VECTOR, trigger_time=3.0))
    assert vec.product_id == VECTOR.product_id and vec.event_time == VECTOR.event_time
    np.testing.assert_array_equal(
        np.array(vec.values, dtype=np.float32), np.array(VECTOR.values, dtype=np.float32)
    )


def test_prediction_round_trip_and_batch_encoding_is_byte_identical() -> None:
    pred = Prediction("BTC-USD", 10.0, 0.75, True, "ml", "v1", 0.5, trigger_time=9.5)
    assert decode_prediction(encode_prediction(pred)) == pred
    (batch,) = encode_predictions(
        ["BTC-USD"], [10.0], [0.75], [9.5], variant="ml", model_version="v1", threshold=0.5
    )
    assert batch == encode_prediction(pred)


def test_prediction_with_its_shadow_round_trips_and_encodes_identically_in_batch() -> None:
    shadow = Shadow("baseline", 0.25, False)
    pred = Prediction("BTC-USD", 10.0, 0.75, True, "ml", "v1", 0.5, 9.5, shadow)
    assert decode_prediction(encode_prediction(pred)) == pred
    (batch,) = encode_predictions(
        ["BTC-USD"],
        [10.0],
        [0.75],
        [9.5],
        variant="ml",
        model_version="v1",
        threshold=0.5,
        shadow_scores=[0.25],
        shadow_variant="baseline",
        shadow_threshold=0.3,
    )
    assert batch == encode_prediction(pred)
    assert json.loads(batch)["shadow"] == {"variant": "baseline", "score": 0.25, "spike": False}
    with pytest.raises(MessageError, match="shadow"):
        decode_prediction(batch.replace(b'"spike":false}', b'"spike":0}'))


BAD_TICKS = {
    b"not json": "not_json",
    b"[1, 2]": "not_object",
    b'{"product_id":"BTC-USD","event_time":1.0,"price":1.0,"best_bid":1.0}': "missing_field",
    b'{"product_id":"BTC-USD","event_time":1.0,"price":"1","best_bid":1.0,"best_ask":2.0}': (
        "non_numeric"
    ),
    b'{"product_id":"BTC-USD","event_time":1.0,"price":NaN,"best_bid":1.0,"best_ask":2.0}': (
        "non_finite"
    ),
    b'{"product_id":"BTC-USD","event_time":1.0,"price":1.5,"best_bid":2.0,"best_ask":1.0}': (
        "crossed_book"
    ),
    b'{"product_id":"BTC-USD","event_time":1.0,"price":0,"best_bid":1.0,"best_ask":2.0}': (
        "non_positive_price"
    ),
    b'{"product_id":"","event_time":1.0,"price":1.5,"best_bid":1.0,"best_ask":2.0}': (
        "missing_field"
    ),
}


@pytest.mark.parametrize(("data", "reason"), BAD_TICKS.items())
def test_bad_ticks_are_rejected_with_their_reason_alone_and_in_a_batch(
    data: bytes, reason: str
) -> None:
    with pytest.raises(MessageError) as err:
        decode_tick(data)
    assert err.value.reason == reason
    good = encode_tick(TICK)
    out = decode_tick_batch([good, data, good])
    assert isinstance(out[1], MessageError) and out[1].reason == reason
    assert [o[0] for o in (out[0], out[2]) if not isinstance(o, MessageError)] == [TICK, TICK]


def test_feature_batch_keeps_good_rows_and_names_bad_ones() -> None:
    good = encode_features(VECTOR)
    other_spec = good.replace(b'"spec":"1"', b'"spec":"0"')
    named = dict(zip(FEATURE_NAMES, VECTOR.values, strict=True))
    named["rv_ten"] = named.pop("rv_10s")
    missing = json.dumps(
        {"product_id": "BTC-USD", "event_time": 1.0, "spec": "1", "features": named}
    ).encode()
    short = good.replace(b'"values":[', b'"values":[1.5,', 1).replace(b"[1.5,0.5,", b"[", 1)
    batch = decode_features_batch([good, other_spec, good, missing, short])
    assert batch.rows == [0, 2]
    assert batch.matrix.shape == (2, len(FEATURE_NAMES))
    assert {i: e.reason for i, e in batch.errors} == {
        1: "feature_spec_mismatch",
        3: "missing_field",
        4: "wrong_length",
    }
    np.testing.assert_array_equal(batch.matrix[0], np.array(VECTOR.values, dtype=np.float32))


def test_non_finite_feature_is_rejected() -> None:
    values = list(VECTOR.values)
    values[3] = math.inf
    data = encode_features(FeatureVector("BTC-USD", 1.0, tuple(values)))
    with pytest.raises(MessageError) as err:
        decode_features(data)
    assert err.value.reason == "non_finite"
