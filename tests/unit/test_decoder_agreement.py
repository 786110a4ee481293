"""The batch decoders are the single decoders, faster: same value or same rejection reason for
every document, whatever else is in the batch (property-based, over generated documents)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from volatility.features import FEATURE_NAMES, FeatureVector
from volatility.messages import (
    MessageError,
    decode_features_batch,
    decode_features_traced,
    decode_record,
    decode_tick_batch,
    encode_features,
    encode_tick,
    encode_watermark,
)
from volatility.ticks import Tick, Watermark

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values a field may hold: right and wrong types, edge numbers.
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(min_value=0.01, max_value=1e6),
    st.integers(min_value=-(2**70), max_value=2**70),
)
odd = st.one_of(
    st.booleans(),
    st.none(),
    st.text(max_size=4),
    st.sampled_from(["0.5", " 1", "1e3", "NaN"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
field_value = st.one_of(numbers, numbers, odd)
product = st.one_of(st.sampled_from(["BTC-USD", "ETH-USD"]), st.text(max_size=3), odd)


@st.composite
def tick_documents(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["valid", "fields", "watermark", "raw"]))
    if kind == "valid":
        bid = draw(st.floats(min_value=0.01, max_value=1e6))
        tick = Tick(
            "BTC-USD",
            draw(st.floats(min_value=0, max_value=2e9)),
            bid,
            bid,
            bid + draw(st.floats(min_value=0, max_value=10)),
            draw(st.none() | st.integers(min_value=0, max_value=2**40)),
            draw(st.none() | st.floats(min_value=0, max_value=1e6)),
        )
        ingest = draw(st.none() | st.floats(min_value=0, max_value=2e9))
        return encode_tick(tick, ingest)
    if kind == "watermark":
        doc: dict[str, Any] = {"product_id": draw(product), "watermark": draw(field_value)}
        if draw(st.booleans()):
            doc["ingest_time"] = draw(field_value)
        return json.dumps(doc).encode()
    if kind == "raw":
        base = encode_tick(Tick("BTC-USD", 1.5, 10.0, 9.0, 11.0), 2.0)
        return draw(
            st.sampled_from(
                [
                    base.replace(b"10.0", b"NaN"),
                    base.replace(b"10.0", b"1e999"),
                    base.replace(b":", b": ", 1),
                    base[:-3],
                    base + b"," + base,
                    b"[" * 2000 + b"]" * 2000,
                    b"",
                    b"  " + base,
                    base.replace(b"9.0", b"true"),
                    base.replace(b"9.0", b"90000000000000000000000"),
                ]
            )
        )
    keys = ["product_id", "event_time", "price", "best_bid", "best_ask"]
    doc = {k: draw(product if k == "product_id" else field_value) for k in keys}
    for k in ("sequence_num", "volume_24h", "ingest_time", "watermark"):
        if draw(st.booleans()):
            doc[k] = draw(field_value)
    return json.dumps(doc).encode()


def _outcome(result: Any) -> Any:
    if isinstance(result, MessageError):
        return ("error", result.reason)
    record, ingest = result
    return ("ok", record, None if math.isnan(ingest) else ingest)


def _single(data: bytes, decode: Any) -> Any:
    try:
        return _outcome(decode(data))
    except MessageError as exc:
        return ("error", exc.reason)


@_SETTINGS
@given(st.lists(tick_documents(), min_size=1, max_size=8))
def test_tick_batch_decoding_equals_single_decoding(batch: list[bytes]) -> None:
    got = [_outcome(r) for r in decode_tick_batch(batch)]
    assert got == [_single(d, decode_record) for d in batch]


VECTOR = FeatureVector(
    "ETH-USD", 1_775_000_060.0, tuple(0.5 + i for i in range(len(FEATURE_NAMES)))
)


@st.composite
def feature_documents(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["valid", "positional", "named", "raw"]))
    if kind == "valid":
        values = draw(st.lists(st.floats(width=32), min_size=23, max_size=23))
        trigger = draw(st.none() | st.floats(min_value=0, max_value=2e9))
        return encode_features(FeatureVector("BTC-USD", 7.0, tuple(values)), trigger)
    doc: dict[str, Any] = {
        "product_id": draw(product),
        "event_time": draw(field_value),
        "spec": draw(st.sampled_from(["1", "1", "0", 1])),
    }
    n = len(FEATURE_NAMES)
    if kind == "positional":
        size = draw(st.sampled_from([n, n, n - 1]))
        doc["values"] = [draw(st.one_of(numbers, numbers, numbers, odd)) for _ in range(size)]
    if kind == "named":
        names = draw(st.lists(st.sampled_from(FEATURE_NAMES), min_size=n - 1, max_size=n))
        doc["features"] = {k: draw(st.one_of(numbers, numbers, odd)) for k in FEATURE_NAMES}
        if len(set(names)) < n:
            doc["features"].pop(names[0])
    if draw(st.booleans()):
        doc["trigger_time"] = draw(field_value)
    if kind == "raw":
        base = encode_features(VECTOR, 3.0)
        return draw(
            st.sampled_from(
                [
                    base.replace(b"0.5,", b'"0.5",', 1),
                    base.replace(b"0.5,", b" true,", 1),
                    base.replace(b"0.5,", b"NaN,", 1),
                    base.replace(b"0.5,", b"1e999,", 1),
                    base[:-2],
                    base + b"," + base,
                    b"[1, 2]",
                ]
            )
        )
    return json.dumps(doc).encode()


@_SETTINGS
@given(st.lists(feature_documents(), min_size=1, max_size=8))
def test_feature_batch_decoding_equals_single_decoding(batch: list[bytes]) -> None:
    decoded = decode_features_batch(batch)
    got: dict[int, Any] = {i: ("error", e.reason) for i, e in decoded.errors}
    for k, i in enumerate(decoded.rows):
        row = tuple(decoded.matrix[k].tolist())
        trigger = decoded.trigger_times[k]
        got[i] = ("ok", decoded.product_ids[k], decoded.event_times[k], row, trigger)
    assert sorted(got) == list(range(len(batch)))
    for i, data in enumerate(batch):
        try:
            vec, trigger = decode_features_traced(data)
        except MessageError as exc:
            assert got[i] == ("error", exc.reason), data
            continue
        values = tuple(np.array(vec.values, dtype=np.float32).tolist())
        assert got[i][:4] == ("ok", vec.product_id, vec.event_time, values), data
        assert got[i][4] == trigger or (math.isnan(got[i][4]) and math.isnan(trigger))


def test_a_watermark_round_trips_and_needs_its_ingest_time() -> None:
    data = encode_watermark(Watermark("BTC-USD", 12.5), 13.0)
    assert decode_record(data) == (Watermark("BTC-USD", 12.5), 13.0)
    ((mark, ingest),) = decode_tick_batch([data])  # type: ignore[misc]
    assert (mark, ingest) == (Watermark("BTC-USD", 12.5), 13.0)
    (err,) = decode_tick_batch([b'{"product_id":"BTC-USD","watermark":12.5}'])
    assert isinstance(err, MessageError) and err.reason == "missing_field"
