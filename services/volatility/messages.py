"""The JSON documents on the bus: ticks, feature vectors and predictions.

Decoding validates: a message that cannot be used raises :class:`MessageError` with a stable
``reason``, which services count and send to the dead-letter topic.

Latency is traced with optional fields that older readers ignore: a tick may carry
``ingest_time`` (wall clock when it entered the pipeline), a feature vector and its prediction
``trigger_time`` (the ingest time of the tick that closed the window, or the wall clock at which a
quiet feed's watermark closed it).

Parsing uses orjson; a document it refuses is parsed again by the standard library, which also
reads NaN and Infinity, so that such values are reported as ``non_finite`` rather than
``not_json``. The ``*_batch`` functions are the services' hot path. They parse a whole batch with
one ``orjson.loads`` and accept only documents that pass the same checks as the single decoders; any
other document goes through the single decoder, so results and reasons are identical.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson

from volatility.features import FEATURE_NAMES, FEATURE_SPEC_VERSION, FeatureVector
from volatility.ticks import Tick

_INF = math.inf
_NAN = math.nan


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
    trigger_time: float | None = None

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "product_id": self.product_id,
            "event_time": self.event_time,
            "score": self.score,
            "spike": self.spike,
            "variant": self.variant,
            "model_version": self.model_version,
            "threshold": self.threshold,
        }
        if self.trigger_time is not None:
            doc["trigger_time"] = self.trigger_time
        return doc


def _parse(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _load(data: bytes) -> dict[str, Any]:
    try:
        doc = _parse(data)
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


def encode_tick(tick: Tick, ingest_time: float | None = None) -> bytes:
    doc: dict[str, Any] = {
        "product_id": tick.product_id,
        "event_time": tick.event_time,
        "price": tick.price,
        "best_bid": tick.best_bid,
        "best_ask": tick.best_ask,
        "sequence_num": tick.sequence_num,
        "volume_24h": tick.volume_24h,
    }
    if ingest_time is not None:
        doc["ingest_time"] = ingest_time
    return orjson.dumps(doc)


def _optional_time(doc: dict[str, Any], key: str) -> float | None:
    """A tracing timestamp: used when it is a finite number, otherwise ignored (never fatal)."""
    value = doc.get(key)
    if type(value) is float or type(value) is int:
        value = float(value)
        if -_INF < value < _INF:
            return value
    return None


def decode_tick(data: bytes) -> Tick:
    return _tick(_load(data))


def _tick(doc: dict[str, Any]) -> Tick:
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


def _load_batch(values: Sequence[bytes], joined: bytes | None = None) -> list[Any] | None:
    """Every document of a batch with one parse; None when any of them is not JSON."""
    try:
        docs = orjson.loads(b"[" + (b",".join(values) if joined is None else joined) + b"]")
    except orjson.JSONDecodeError:
        return None
    # A value holding two documents ("{},{}") would shift the ones after it.
    return docs if isinstance(docs, list) and len(docs) == len(values) else None


_tick_fields = itemgetter("product_id", "event_time", "price", "best_bid", "best_ask")

#: A decoded tick and its ingest time (NaN when the producer did not record one).
TracedTick = tuple[Tick, float]


def decode_tick_batch(values: Sequence[bytes]) -> list[TracedTick | MessageError]:
    """Decode a batch of ticks; each item is the tick or the error that rejected it."""
    docs = _load_batch(values)
    out: list[TracedTick | MessageError] = []
    append = out.append
    fields = _tick_fields
    for i, data in enumerate(values):
        doc = docs[i] if docs is not None else None
        # The common, valid shape is accepted inline; everything else takes the full path.
        if type(doc) is dict:
            try:
                pid, t, price, bid, ask = fields(doc)
            except KeyError:
                pid = None
            if (
                type(pid) is str
                and pid
                and type(t) is float
                and type(price) is float
                and type(bid) is float
                and type(ask) is float
                and -_INF < t < _INF
                and 0.0 < price < _INF
                and 0.0 < bid <= ask < _INF
            ):
                seq, vol = doc.get("sequence_num"), doc.get("volume_24h")
                ingest = doc.get("ingest_time")
                append(
                    (
                        Tick(
                            pid,
                            t,
                            price,
                            bid,
                            ask,
                            seq if type(seq) is int else None,
                            float(vol) if type(vol) is float or type(vol) is int else None,
                        ),
                        ingest if type(ingest) is float and -_INF < ingest < _INF else _NAN,
                    )
                )
                continue
        try:
            full = _load(data) if doc is None else doc
            if not isinstance(full, dict):
                raise MessageError("not_object", type(full).__name__)
            ingest_time = _optional_time(full, "ingest_time")
            append((_tick(full), _NAN if ingest_time is None else ingest_time))
        except MessageError as exc:
            append(exc)
    return out


# Feature values are written at float32 precision, the precision models consume: rounded to
# float32, then 9 significant digits, which restore that float32 exactly and are much cheaper
# to write and parse than a float64 repr.
_F32 = struct.Struct(f"<{len(FEATURE_NAMES)}f")
_FEATURES_TEMPLATE = (
    '{"product_id":%s,"event_time":%r,"spec":'
    + json.dumps(FEATURE_SPEC_VERSION)
    + ',"features":{'
    + ",".join(f"{json.dumps(name)}:%.9g" for name in FEATURE_NAMES)
    + "}"
)
_json_strings: dict[str, str] = {}


def _json_string(text: str) -> str:
    """JSON form of a short, repeated string (product ids, variants), built once."""
    cached = _json_strings.get(text)
    if cached is None:
        if len(_json_strings) > 10_000:
            _json_strings.clear()
        cached = _json_strings[text] = json.dumps(text)
    return cached


def encode_features(vec: FeatureVector, trigger_time: float | None = None) -> bytes:
    values = vec.values
    if not -_INF < sum(values) < _INF:
        # Not finite somewhere: keep the reader's "non_finite" verdict (json writes NaN/Infinity).
        doc: dict[str, Any] = {
            "product_id": vec.product_id,
            "event_time": vec.event_time,
            "spec": FEATURE_SPEC_VERSION,
            "features": vec.as_dict(),
        }
        if trigger_time is not None:
            doc["trigger_time"] = trigger_time
        return json.dumps(doc, separators=(",", ":")).encode()
    text = _FEATURES_TEMPLATE % (
        _json_string(vec.product_id),
        vec.event_time,
        *_F32.unpack(_F32.pack(*values)),
    )
    if trigger_time is not None:
        return f'{text},"trigger_time":{trigger_time!r}}}'.encode()
    return (text + "}").encode()


def decode_features(data: bytes) -> FeatureVector:
    return _features(_load(data))


def _features(doc: dict[str, Any]) -> FeatureVector:
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


_feature_values = itemgetter(*FEATURE_NAMES)


@dataclass(slots=True)
class FeatureBatch:
    """The usable feature vectors of a batch as columns, plus what was rejected and why.

    ``rows[i]`` is the batch position of ``product_ids[i]``, ``event_times[i]``,
    ``trigger_times[i]`` (NaN when absent) and row ``i`` of ``matrix`` (float32).
    """

    rows: list[int]
    product_ids: list[str]
    event_times: list[float]
    trigger_times: list[float]
    matrix: Any
    errors: list[tuple[int, MessageError]]


def decode_features_batch(values: Sequence[bytes]) -> FeatureBatch:
    import numpy as np

    joined = b",".join(values)
    docs = _load_batch(values, joined)
    # true/false/null are never feature values; documents holding one take the full path. A
    # literal always follows a colon, so one look at the whole batch usually clears every row.
    no_literals = b":t" not in joined and b":f" not in joined and b":n" not in joined
    rows: list[int] = []
    pids: list[str] = []
    times: list[float] = []
    triggers: list[float] = []
    table: list[tuple[float, ...]] = []
    slow: list[int] = []
    for i, data in enumerate(values):
        doc = docs[i] if docs is not None else None
        if (
            type(doc) is dict
            and doc.get("spec") == FEATURE_SPEC_VERSION
            and (
                no_literals
                or (b":true" not in data and b":false" not in data and b":null" not in data)
            )
        ):
            pid, t, features = doc.get("product_id"), doc.get("event_time"), doc.get("features")
            if (
                type(pid) is str
                and pid
                and type(t) is float
                and -_INF < t < _INF
                and type(features) is dict
            ):
                try:
                    row = _feature_values(features)
                except KeyError:
                    slow.append(i)
                    continue
                trigger = doc.get("trigger_time")
                rows.append(i)
                pids.append(pid)
                times.append(t)
                triggers.append(
                    trigger if type(trigger) is float and -_INF < trigger < _INF else _NAN
                )
                table.append(row)
                continue
        slow.append(i)
    matrix = np.empty((0, len(FEATURE_NAMES)), dtype=np.float32)
    if table:
        bad: list[bool]
        try:
            wide = np.array(table, dtype=np.float64)
            finite: Any = np.isfinite(wide).all(axis=1)
            bad = [not ok for ok in finite.tolist()]
        except (TypeError, ValueError):  # a string among the values
            wide, bad = None, [True] * len(table)
        if any(bad):
            keep = [k for k in range(len(rows)) if not bad[k]]
            slow += [rows[k] for k in range(len(rows)) if bad[k]]
            rows = [rows[k] for k in keep]
            pids = [pids[k] for k in keep]
            times = [times[k] for k in keep]
            triggers = [triggers[k] for k in keep]
            wide = wide[keep] if wide is not None else None
        if wide is not None:
            matrix = wide.astype(np.float32)
    errors: list[tuple[int, MessageError]] = []
    extra: list[tuple[int, FeatureVector, float]] = []
    for i in sorted(slow):
        try:
            doc = docs[i] if docs is not None else _load(values[i])
            if not isinstance(doc, dict):
                raise MessageError("not_object", type(doc).__name__)
            vec = _features(doc)
        except MessageError as exc:
            errors.append((i, exc))
            continue
        trigger_time = _optional_time(doc, "trigger_time")
        extra.append((i, vec, _NAN if trigger_time is None else trigger_time))
    if extra:
        # Valid documents in an unusual shape (integers, reordered keys...) join the batch.
        rows += [i for i, _, _ in extra]
        pids += [v.product_id for _, v, _ in extra]
        times += [v.event_time for _, v, _ in extra]
        triggers += [t for _, _, t in extra]
        matrix = np.vstack([matrix, np.array([v.values for _, v, _ in extra], dtype=np.float32)])
    return FeatureBatch(rows, pids, times, triggers, matrix, errors)


def encode_prediction(pred: Prediction) -> bytes:
    return json.dumps(pred.as_dict(), separators=(",", ":")).encode()  # may hold NaN: stdlib


def encode_predictions(
    product_ids: Sequence[str],
    event_times: Sequence[float],
    scores: Sequence[float],
    trigger_times: Sequence[float],
    *,
    variant: str,
    model_version: str,
    threshold: float,
) -> list[bytes]:
    """The documents of a scored batch, byte-for-byte what :func:`encode_prediction` writes."""
    tail_spike = (
        f',"spike":true,"variant":{_json_string(variant)},'
        f'"model_version":{_json_string(model_version)},"threshold":{threshold!r}'
    )
    tail_calm = tail_spike.replace('"spike":true', '"spike":false', 1)
    out: list[bytes] = []
    for pid, t, score, trigger in zip(product_ids, event_times, scores, trigger_times, strict=True):
        if not (-_INF < score < _INF and -_INF < t < _INF):
            out.append(
                encode_prediction(
                    Prediction(
                        pid,
                        t,
                        score,
                        score >= threshold,
                        variant,
                        model_version,
                        threshold,
                        None if trigger != trigger else trigger,
                    )
                )
            )
            continue
        text = (
            f'{{"product_id":{_json_string(pid)},"event_time":{t!r},"score":{score!r}'
            f"{tail_spike if score >= threshold else tail_calm}"
        )
        if trigger == trigger:  # not NaN
            text += f',"trigger_time":{trigger!r}'
        out.append((text + "}").encode())
    return out


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
        trigger_time=_optional_time(doc, "trigger_time"),
    )
