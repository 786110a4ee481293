"""Settings read from the environment, one object per service, built in the service's main."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from volatility.features.engine import CONVERGENCE_SECONDS
from volatility.names import (
    COINBASE_WS_URL,
    DEFAULT_PRODUCTS,
    GROUP_CONSUMER,
    GROUP_FEATURIZER,
    TOPIC_DEADLETTER,
    TOPIC_FEATURES,
    TOPIC_PREDICTIONS,
    TOPIC_TICKS,
    VariantName,
)
from volatility.ticks import DEFAULT_MAX_SKEW_SECONDS

#: Event time the featurizer re-reads to rebuild a partition's state: enough for every product's
#: vectors to be bit-identical to those of the run that was interrupted (the engine's
#: convergence bound), plus a margin for products whose stream lags the partition's.
DEFAULT_REBUILD_SECONDS = float(CONVERGENCE_SECONDS + 30)

# Shipped models: models/artifacts in a checkout; images set MODEL_DIR.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "artifacts"


class KafkaSettings(BaseSettings):
    """Connection to the Kafka cluster (one broker in tests, any cluster in production)."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    client_id: str = "volatility"
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    topic_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)
    # Stream services create their missing topics when they start (the chart sets it): a
    # Deployment's own pods then need no init container, and a rolled pod starts one process.
    create_topics: bool = False
    # A producer that has had nothing acknowledged on a partition the broker serves, with
    # messages outstanding, for this long is replaced (see bus/stall.py).
    producer_stall_seconds: float = Field(default=10.0, ge=0)

    def client_config(self) -> dict[str, str | int | float | bool]:
        conf: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password
        return conf


class RuntimeSettings(BaseSettings):
    """What every service shares: logging and the metrics/health port."""

    model_config = SettingsConfigDict(frozen=True)

    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    metrics_port: int = Field(default=9000, ge=0, le=65535)


def _split_products(value: object) -> object:
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return value


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", frozen=True)

    ws_url: str = COINBASE_WS_URL
    # Comma-separated in the environment: INGEST_PRODUCTS=BTC-USD,ETH-USD
    products: Annotated[tuple[str, ...], NoDecode] = DEFAULT_PRODUCTS
    stale_after_seconds: float = Field(default=10.0, gt=0)
    # A frame stamped further than this from its receive time is not believed: its ticks are
    # dead-lettered (clock_skew) and it does not move the watermarks.
    max_skew_seconds: float = Field(default=300.0, gt=0)
    # Watermarks trail the exchange's clock by this much (0: the exchange stamps in order).
    watermark_lag_seconds: float = Field(default=0.0, ge=0)

    _split = field_validator("products", mode="before")(_split_products)


class ModelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODEL_", frozen=True)

    variant: VariantName = "baseline"
    dir: Path = DEFAULT_MODEL_DIR
    # The consumer also scores every vector with the other variant, without serving it, and
    # follows both variants' live quality (MODEL_SHADOW=false turns that off).
    shadow: bool = True


class TopicSettings(BaseSettings):
    """Topic and consumer-group names; the defaults come from names.py.

    Overridable (KAFKA_TOPIC_TICKS, KAFKA_GROUP_FEATURIZER, ...) so that one cluster can host
    several independent pipelines, e.g. one per test or per environment.
    """

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True)

    topic_ticks: str = TOPIC_TICKS
    topic_features: str = TOPIC_FEATURES
    topic_predictions: str = TOPIC_PREDICTIONS
    topic_deadletter: str = TOPIC_DEADLETTER
    group_featurizer: str = GROUP_FEATURIZER
    group_consumer: str = GROUP_CONSUMER

    @property
    def all_topics(self) -> tuple[str, str, str, str]:
        return (
            self.topic_ticks,
            self.topic_features,
            self.topic_predictions,
            self.topic_deadletter,
        )


class FeaturizerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEATURIZER_", frozen=True)

    # The products to featurize (comma-separated); records of any other are dead-lettered.
    products: Annotated[tuple[str, ...], NoDecode] = DEFAULT_PRODUCTS
    # A tick further ahead of its product's stream clock than this is dead-lettered
    # (clock_skew), and so is a tick or watermark further ahead of its own ingest time
    # (future_time).
    max_skew_seconds: float = Field(default=DEFAULT_MAX_SKEW_SECONDS, gt=0)
    # After a restart or reassignment, this much event time before the committed position is
    # re-read to rebuild the windows, so that no vector is lost and the re-published ones are
    # identical (at least the engine's convergence bound).
    rebuild_seconds: float = Field(default=DEFAULT_REBUILD_SECONDS, ge=CONVERGENCE_SECONDS)

    _split = field_validator("products", mode="before")(_split_products)


class ConsumerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONSUMER_", frozen=True)

    # The products to score (comma-separated); vectors of any other are dead-lettered.
    products: Annotated[tuple[str, ...], NoDecode] = DEFAULT_PRODUCTS

    _split = field_validator("products", mode="before")(_split_products)


class KafkaConsumerSettings(BaseSettings):
    """How the Kafka-mode loops consume: group liveness, batching and reporting cadence."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_CONSUMER_", frozen=True)

    # A crashed member's partitions move to the others after this long (the broker's
    # group.min.session.timeout.ms, 6 s by default, is the floor).
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    # Static membership (e.g. the StatefulSet pod name): a restart keeps its partitions.
    group_instance_id: str | None = None
    max_batch: int = Field(default=2000, ge=1)
    poll_timeout_seconds: float = Field(default=0.05, gt=0)
    lag_interval_seconds: float = Field(default=5.0, gt=0)
