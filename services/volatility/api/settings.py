"""What the API reads from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from volatility.names import GROUP_API
from volatility.settings import ModelSettings

DEFAULT_MAX_BATCH_ROWS = 10_000
# A named-feature row is under 1 KiB of JSON, so a full batch fits with room to spare.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# Request bodies held at once across all requests (four full-size bodies).
DEFAULT_BODY_BUFFER_BYTES = 4 * DEFAULT_MAX_BODY_BYTES


class ApiSettings(BaseSettings):
    """API_* variables, MODEL_VARIANT and MODEL_DIR (as ``models``) and MODEL_VARIANT_FILE."""

    model_config = SettingsConfigDict(env_prefix="API_", frozen=True, populate_by_name=True)

    models: ModelSettings = Field(default_factory=ModelSettings)
    # A file holding a variant name; when it changes the running process switches to that variant.
    variant_file: Path | None = Field(
        default=None, validation_alias=AliasChoices("MODEL_VARIANT_FILE", "variant_file")
    )
    variant_poll_seconds: float = Field(default=1.0, gt=0)
    max_batch_rows: int = Field(default=DEFAULT_MAX_BATCH_ROWS, ge=1)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    # Bodies above this are decoded and scored in a worker thread so that small requests keep
    # flowing on the event loop meanwhile.
    offload_body_bytes: int = Field(default=256 * 1024, ge=0)
    # Bytes of request bodies held at once; a request waits for its share before reading its body.
    body_buffer_bytes: int = Field(default=DEFAULT_BODY_BUFFER_BYTES, ge=1024)
    # Worker threads decoding and scoring large bodies at once (decoding holds the GIL).
    scoring_threads: int = Field(default=1, ge=1)
    # Answer the scoring routes at the ASGI level, past FastAPI's per-request machinery.
    fast_path: bool = True
    onnx_threads: int = Field(default=1, ge=1)
    # Once started, move what start-up allocated out of the collector's reach and collect young
    # objects less often: full collections otherwise walk every module and schema object, a pause
    # of tens of milliseconds. Process-wide, so set by ``volatility serve``, not when embedded.
    tune_gc: bool = False
    # Where /predictions/* come from: "kafka" reads the predictions topic (KAFKA_* settings);
    # "none" serves models only. `volatility up` hands the API its in-process bus instead.
    predictions_source: Literal["none", "kafka"] = "none"
    # Prefix of the reader's consumer group; each process appends its host name and pid.
    predictions_group: str = GROUP_API
    # Predictions older than this (event time) are not pushed to live-stream clients: they are
    # history read while catching up, not news.
    stream_max_age_seconds: float = Field(default=60.0, gt=0)
    stream_max_clients: int = Field(default=100, ge=1)
    # A comment line this often keeps idle streams open through proxies.
    stream_keepalive_seconds: float = Field(default=15.0, gt=0)
    # Set by image builds (e.g. the git revision); reported by /version.
    build_revision: str | None = Field(
        default=None, validation_alias=AliasChoices("BUILD_REVISION", "build_revision")
    )

    @model_validator(mode="after")
    def _one_body_fits(self) -> Self:
        if self.body_buffer_bytes < self.max_body_bytes:
            raise ValueError(
                f"body_buffer_bytes ({self.body_buffer_bytes}) must hold one body of "
                f"max_body_bytes ({self.max_body_bytes})"
            )
        return self
