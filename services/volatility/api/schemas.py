"""The documented shapes of requests and responses (OpenAPI), one place for both protocols.

Scoring requests are decoded by :mod:`volatility.api.decode` without pydantic (it is the hot
path); their JSON Schemas here say exactly what that decoder accepts.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from volatility.api.decode import FLOAT32_MAX, N_FEATURES
from volatility.features.spec import FEATURE_DOCS, FEATURE_NAMES
from volatility.names import VariantName

SCORING_INPUT = "features"
SCORING_OUTPUT = "probabilities"
DATATYPE = "FP32"


def _feature_doc(name: str) -> str:
    return FEATURE_DOCS.get(name) or FEATURE_DOCS.get(re.sub(r"_\d+s$", "_Ws", name), name)


def feature_row_schema() -> dict[str, Any]:
    number = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    return {
        "title": "FeatureRow",
        "description": "One feature vector: every feature of the spec, by name, and nothing else.",
        "type": "object",
        "properties": {n: {**number, "description": _feature_doc(n)} for n in FEATURE_NAMES},
        "required": list(FEATURE_NAMES),
        "additionalProperties": False,
    }


def predict_request_schemas(max_rows: int) -> dict[str, dict[str, Any]]:
    """Component schemas for POST /predict, keyed by name; ``PredictRequest`` is the body."""
    row = {"$ref": "#/components/schemas/FeatureRow"}

    def batch(key: str, doc: str) -> dict[str, Any]:
        return {
            "type": "object",
            "description": doc,
            "properties": {key: {"type": "array", "items": row, "maxItems": max_rows}},
            "required": [key],
            "additionalProperties": False,
        }

    return {
        "FeatureRow": feature_row_schema(),
        "PredictSingle": {
            "type": "object",
            "description": "Score one feature vector.",
            "properties": {"features": row},
            "required": ["features"],
            "additionalProperties": False,
        },
        "PredictInstances": batch("instances", "Score a batch of feature vectors."),
        "PredictRows": batch("rows", "Score a batch (the older spelling of instances)."),
        "PredictRequest": {
            "oneOf": [
                {"$ref": "#/components/schemas/PredictSingle"},
                {"$ref": "#/components/schemas/PredictInstances"},
                {"$ref": "#/components/schemas/PredictRows"},
            ]
        },
    }


class PredictOne(BaseModel):
    score: float = Field(description="Spike probability")
    spike: bool = Field(description="score >= threshold")
    variant: VariantName
    model_version: str
    threshold: float = Field(description="The model's operating threshold")


class PredictBatch(BaseModel):
    scores: list[float] = Field(description="Spike probabilities, in request order")
    spikes: list[bool] = Field(description="score >= threshold, in request order")
    count: int
    variant: VariantName
    model_version: str
    threshold: float


class ErrorBody(BaseModel):
    detail: str = Field(description="What is wrong, naming the field at fault")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    variant: VariantName | None = None
    detail: str | None = None


class LoadedModel(BaseModel):
    version: str
    sha256: str
    threshold: float


class VersionInfo(BaseModel):
    variant: VariantName = Field(description="The active variant")
    model_version: str
    model_sha256: str
    threshold: float
    feature_names: list[str] = Field(description="Model input columns, in order")
    feature_spec_version: str
    tick_source: str
    package_version: str
    build_revision: str | None
    loaded: dict[str, LoadedModel] = Field(description="Every loaded variant")


class PredictionOut(BaseModel):
    product_id: str
    event_time: float = Field(description="End of the feature window scored (Unix seconds)")
    score: float
    spike: bool = Field(description="score >= threshold")
    variant: str
    model_version: str
    threshold: float
    trigger_time: float | None = Field(
        default=None, description="When the tick that closed the window entered the pipeline"
    )
    age_seconds: float = Field(description="Seconds from event_time to this answer")


class LatestPredictions(BaseModel):
    source: str = Field(description="Where predictions are read: a Kafka topic, or in-process")
    last_received_seconds_ago: float | None = Field(
        description="Since this process last read a prediction; null if it has read none"
    )
    predictions: list[PredictionOut] = Field(description="The latest per product, by product")


# Open Inference Protocol v2.


class V2Error(BaseModel):
    error: str


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


Float32 = Annotated[float, Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]


class V2InferInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["features"]
    shape: list[Annotated[int, Field(ge=0)]] = Field(
        min_length=2,
        max_length=2,
        description=f"[n, {N_FEATURES}]; data holds n * {N_FEATURES} values",
    )
    datatype: Literal["FP32"]
    data: list[Float32] | list[list[Float32]] | None = Field(
        default=None,
        description="Row-major values, flat or nested; absent when the values are sent in "
        "binary (parameters.binary_data_size, with the Inference-Header-Content-Length header)",
    )
    parameters: dict[str, Any] | None = None


class V2RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["probabilities"]
    parameters: dict[str, Any] | None = None


class V2InferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    model_name: str | None = Field(default=None, description="If given, the path's model")
    parameters: dict[str, Any] | None = Field(
        default=None, description="binary_data_output: true sends outputs in binary"
    )
    inputs: list[V2InferInput] = Field(min_length=1, max_length=1)
    outputs: list[V2RequestedOutput] | None = None


class V2InferOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[V2InferOutput]
