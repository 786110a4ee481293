"""The JSON documents on the bus: ticks, feature vectors and predictions.

Decoding validates: a message that cannot be used raises :class:`MessageError` with a stable
``reason``, which services count and send to the dead-letter topic.

The ticks topic carries ticks and watermarks (``{"product_id", "watermark", "ingest_time"}``: no
tick of that product before ``watermark`` follows; see ``stages.py`` for the contract).

Latency is traced with optional fields that older readers ignore: a tick may carry
``ingest_time`` (wall clock when it entered the pipeline), a feature vector and its prediction
``trigger_time`` (the ingest time of the tick or watermark that closed the window).

Parsing uses orjson; a document it refuses is parsed again by the standard library, which also
reads NaN and Infinity, so that such values are reported as ``non_finite`` rather than
``not_json``. The ``*_batch`` functions are the services' hot path: they accept inline only
documents of the common, valid shape and hand every other one to the single decoder, so each
result or rejection reason is exactly the single decoder's (a property test checks it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, cast

import orjson

from volatility.features import FEATURE_NAMES, FEATURE_SPEC_VERSION, FeatureVector
from volatility.ticks import StreamRecord, Tick, Watermark

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
    # The other variant's view of the same vector, scored beside it without serving.
    shadow: Shadow | None = None

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
        if self.shadow is not None:
            doc["shadow"] = self.shadow.as_dict()
        return doc


@dataclass(frozen=True, slots=True)
class Shadow:
    variant: str
    score: float
    spike: bool

    def as_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "score": self.score, "spike": self.spike}


def _parse(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _load(data: bytes) -> dict[str, Any]:
    try:
        doc = _parse(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MessageError("not_json", str(exc)[:200]) from exc
    if not isinstance(doc, dict):
        raise MessageError("not_object", type(doc).__name__)
    return doc


def _number(doc: dict[str, Any], key: str) -> float:
    if key not in doc:
        raise MessageError("missing_field", key)
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MessageError("non_numeric", key)
    try:
        value = float(value)
    except OverflowError:  # an integer beyond any float
        raise MessageError("non_finite", key) from None
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


def encode_watermark(mark: Watermark, ingest_time: float) -> bytes:
    """A watermark record of the ticks topic; its ingest time is required (see `decode_record`)."""
    return orjson.dumps(
        {"product_id": mark.product_id, "watermark": mark.event_time, "ingest_time": ingest_time}
    )


def _optional_time(doc: dict[str, Any], key: str) -> float | None:
    """A tracing timestamp: used when it is a finite number, otherwise ignored (never fatal)."""
    value = doc.get(key)
    if type(value) is float or type(value) is int:
        try:
            value = float(value)
        except OverflowError:
            return None
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


#: A record of the ticks topic and its ingest time (NaN when the producer did not record one).
TracedRecord = tuple[StreamRecord, float]
#: Kept for readers of ticks only.
TracedTick = TracedRecord


def decode_record(data: bytes) -> TracedRecord:
    """One record of the ticks topic: a tick, or a watermark (which must carry its ingest time,
    the bound the featurizer checks it against)."""
    doc = _load(data)
    if "watermark" in doc:
        return Watermark(_string(doc, "product_id"), _number(doc, "watermark")), _number(
            doc, "ingest_time"
        )
    ingest_time = _optional_time(doc, "ingest_time")
    return _tick(doc), _NAN if ingest_time is None else ingest_time


def _parse_each(values: Sequence[bytes]) -> list[Any]:
    """Each value parsed on its own (a joined parse could let one value's text complete
    another's); ``_UNPARSED`` where orjson refuses it."""
    out: list[Any] = []
    append = out.append
    loads = orjson.loads
    for data in values:
        try:
            append(loads(data))
        except orjson.JSONDecodeError:
            append(_UNPARSED)
    return out


_UNPARSED = object()
_tick_fields = itemgetter("product_id", "event_time", "price", "best_bid", "best_ask")


def decode_tick_batch(values: Sequence[bytes]) -> list[TracedRecord | MessageError]:
    """Decode a batch of ticks-topic records: for each, exactly what `decode_record` returns or
    the error it raises. The common, valid shape is accepted inline; anything else takes the
    single decoder."""
    docs = _parse_each(values)
    out: list[TracedRecord | MessageError] = []
    append = out.append
    fields = _tick_fields
    for i, doc in enumerate(docs):
        if type(doc) is dict and "watermark" not in doc:
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
                if type(ingest) is not float:
                    ingest = float(ingest) if type(ingest) is int else _NAN
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
                        ingest if -_INF < ingest < _INF else _NAN,
                    )
                )
                continue
        try:
            append(decode_record(values[i]))
        except MessageError as exc:
            append(exc)
    return out


# The features document is compact: the values are positional, in the FEATURE_NAMES order of
# the spec version the document names ({"product_id", "event_time", "spec", "values": [...]}).
# Documents with named values ("features": {name: value}) are still read. Values are written at
# float32 precision, the precision models consume, in the shortest text that restores that
# float32 exactly (orjson's float32 writer), which is much cheaper to write and parse than
# float64 reprs and names.
_N_FEATURES = len(FEATURE_NAMES)
_SPEC_JSON = json.dumps(FEATURE_SPEC_VERSION).encode()
_json_strings: dict[str, str] = {}


def _json_string(text: str) -> str:
    """JSON form of a short, repeated string (product ids, variants), built once."""
    cached = _json_strings.get(text)
    if cached is None:
        if len(_json_strings) > 10_000:
            _json_strings.clear()
        cached = _json_strings[text] = json.dumps(text)
    return cached


def encode_features_batch(
    vectors: Sequence[FeatureVector], trigger_times: Sequence[float | None]
) -> list[bytes]:
    """The documents of ``vectors`` (trigger time None or NaN: none), one float32 conversion and
    one write for all their values."""
    import numpy as np

    if not vectors:
        return []
    matrix = np.array([v.values for v in vectors], dtype=np.float32)
    finite = cast("list[bool]", np.isfinite(matrix).all(axis=1).tolist())
    body = orjson.dumps(matrix, option=orjson.OPT_SERIALIZE_NUMPY)
    rows = body[2:-2].split(b"],[")  # numbers hold no brackets
    out: list[bytes] = []
    append = out.append
    for vec, trigger, row, ok in zip(vectors, trigger_times, rows, finite, strict=True):
        if not ok:
            append(_encode_non_finite(vec, trigger))
            continue
        head = b'{"product_id":%s,"event_time":%r,"spec":%s,"values":[' % (
            _json_string(vec.product_id).encode(),
            vec.event_time,
            _SPEC_JSON,
        )
        if trigger is None or trigger != trigger:
            append(head + row + b"]}")
        else:
            append(head + row + b'],"trigger_time":%r}' % trigger)
    return out


def _encode_non_finite(vec: FeatureVector, trigger_time: float | None) -> bytes:
    # orjson would write null; the stdlib writes NaN/Infinity, so readers say "non_finite".
    doc: dict[str, Any] = {
        "product_id": vec.product_id,
        "event_time": vec.event_time,
        "spec": FEATURE_SPEC_VERSION,
        "values": list(vec.values),
    }
    if trigger_time is not None and trigger_time == trigger_time:
        doc["trigger_time"] = trigger_time
    return json.dumps(doc, separators=(",", ":")).encode()


def encode_features(vec: FeatureVector, trigger_time: float | None = None) -> bytes:
    return encode_features_batch([vec], [trigger_time])[0]


def decode_features(data: bytes) -> FeatureVector:
    return _features(_load(data))


def _features(doc: dict[str, Any]) -> FeatureVector:
    spec = doc.get("spec")
    if spec != FEATURE_SPEC_VERSION:
        raise MessageError("feature_spec_mismatch", f"spec {spec!r} != {FEATURE_SPEC_VERSION!r}")
    values = doc.get("values")
    if isinstance(values, list):
        if len(values) != _N_FEATURES:
            raise MessageError("wrong_length", f"{len(values)} values, {_N_FEATURES} expected")
        named = dict(zip(FEATURE_NAMES, values, strict=True))
    else:
        named = doc.get("features")  # type: ignore[assignment]
        if not isinstance(named, dict):
            raise MessageError("missing_field", "values")
    return FeatureVector(
        product_id=_string(doc, "product_id"),
        event_time=_number(doc, "event_time"),
        values=tuple(_number(named, name) for name in FEATURE_NAMES),
    )


def decode_features_traced(data: bytes) -> tuple[FeatureVector, float]:
    """A feature vector and its trigger time (NaN when absent), as the batch decoder reads it."""
    doc = _load(data)
    vec = _features(doc)
    trigger_time = _optional_time(doc, "trigger_time")
    return vec, _NAN if trigger_time is None else trigger_time


_feature_values = itemgetter(*FEATURE_NAMES)
_NUMBER_TYPES = frozenset({float, int})


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

    def select(self, keep: Sequence[int]) -> FeatureBatch:
        """The batch with only the usable vectors at positions ``keep`` (same errors)."""
        return FeatureBatch(
            [self.rows[i] for i in keep],
            [self.product_ids[i] for i in keep],
            [self.event_times[i] for i in keep],
            [self.trigger_times[i] for i in keep],
            self.matrix[list(keep)],
            self.errors,
        )


def decode_features_batch(values: Sequence[bytes]) -> FeatureBatch:
    """Decode a batch of features documents: each row or error is exactly what
    `decode_features_traced` returns or raises for that document."""
    import numpy as np

    docs = _parse_each(values)
    rows: list[int] = []
    pids: list[str] = []
    times: list[float] = []
    triggers: list[float] = []
    table: list[Any] = []
    slow: list[int] = []
    number_types = _NUMBER_TYPES
    for i, doc in enumerate(docs):
        if type(doc) is dict and doc.get("spec") == FEATURE_SPEC_VERSION:
            pid, t = doc.get("product_id"), doc.get("event_time")
            if type(pid) is str and pid and type(t) is float and -_INF < t < _INF:
                row = doc.get("values")
                if type(row) is not list or len(row) != _N_FEATURES:
                    features = doc.get("features")
                    if row is not None or type(features) is not dict:
                        slow.append(i)
                        continue
                    try:
                        row = _feature_values(features)
                    except KeyError:
                        slow.append(i)
                        continue
                # Only numbers (a bool or a string would pass numpy's conversion).
                if not set(map(type, row)) <= number_types:
                    slow.append(i)
                    continue
                trigger = doc.get("trigger_time")
                if type(trigger) is not float:
                    trigger = float(trigger) if type(trigger) is int else _NAN
                rows.append(i)
                pids.append(pid)
                times.append(t)
                triggers.append(trigger if -_INF < trigger < _INF else _NAN)
                table.append(row)
                continue
        slow.append(i)
    matrix = np.empty((0, _N_FEATURES), dtype=np.float32)
    if table:
        wide = np.array(table, dtype=np.float64)
        finite = cast("list[bool]", np.isfinite(wide).all(axis=1).tolist())
        if not all(finite):
            keep = [k for k, ok in enumerate(finite) if ok]
            slow += [rows[k] for k, ok in enumerate(finite) if not ok]
            rows = [rows[k] for k in keep]
            pids = [pids[k] for k in keep]
            times = [times[k] for k in keep]
            triggers = [triggers[k] for k in keep]
            wide = wide[keep]
        matrix = wide.astype(np.float32)
    errors: list[tuple[int, MessageError]] = []
    extra: list[tuple[int, FeatureVector, float]] = []
    for i in sorted(slow):
        try:
            vec, trigger_time = decode_features_traced(values[i])
        except MessageError as exc:
            errors.append((i, exc))
            continue
        extra.append((i, vec, trigger_time))
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
    shadow_scores: Sequence[float] | None = None,
    shadow_variant: str = "",
    shadow_threshold: float = 0.5,
) -> list[bytes]:
    """The documents of a scored batch, byte-for-byte what :func:`encode_prediction` writes."""
    tail_spike = (
        f',"spike":true,"variant":{_json_string(variant)},'
        f'"model_version":{_json_string(model_version)},"threshold":{threshold!r}'
    )
    tail_calm = tail_spike.replace('"spike":true', '"spike":false', 1)
    out: list[bytes] = []
    shadows = shadow_scores if shadow_scores is not None else [None] * len(scores)
    shadow_head = f',"shadow":{{"variant":{_json_string(shadow_variant)},"score":'
    for pid, t, score, trigger, other in zip(
        product_ids, event_times, scores, trigger_times, shadows, strict=True
    ):
        if not (-_INF < score < _INF and -_INF < t < _INF) or (
            other is not None and not -_INF < other < _INF
        ):
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
                        None
                        if other is None
                        else Shadow(shadow_variant, other, other >= shadow_threshold),
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
        if other is not None:
            flag = "true" if other >= shadow_threshold else "false"
            text += f'{shadow_head}{other!r},"spike":{flag}}}'
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
        shadow=_optional_shadow(doc),
    )


def _optional_shadow(doc: dict[str, Any]) -> Shadow | None:
    shadow = doc.get("shadow")
    if shadow is None:
        return None
    if not isinstance(shadow, dict):
        raise MessageError("missing_field", "shadow")
    spike = shadow.get("spike")
    if not isinstance(spike, bool):
        raise MessageError("missing_field", "shadow.spike")
    return Shadow(_string(shadow, "variant"), _number(shadow, "score"), spike)
