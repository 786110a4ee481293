"""The Kafka pipeline's plain runs: topics from configuration, a replay scored end to end, a
graceful stop."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from confluent_kafka.admin import AdminClient

from tests.infra.kafka_broker import KafkaBroker
from tests.kafka.pipeline import (
    PARTITIONS,
    VOLATILITY,
    Pipeline,
    PredictionLog,
    TopicReader,
    assert_features_equal_reference,
    assert_one_value_per_key,
    fresh_topic_env,
    wait_for,
)
from tests.stream_reference import reference_by_key, replayed
from volatility.exchange.recordings import iter_ticks
from volatility.messages import decode_prediction


def test_kafka_init_creates_topics_from_configuration_and_is_idempotent(
    kafka_broker: KafkaBroker, kafka_admin: AdminClient, tmp_path: Path
) -> None:
    names = fresh_topic_env("init")
    env = {
        **os.environ,
        **names,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "KAFKA_TOPIC_PARTITIONS": "4",
        "LOG_FORMAT": "json",
    }
    try:
        runs = [
            subprocess.run(
                [str(VOLATILITY), "kafka", "init"], env=env, capture_output=True, timeout=60
            )
            for _ in range(2)
        ]
        assert [r.returncode for r in runs] == [0, 0], runs[0].stdout + runs[1].stdout
        outcomes = [
            {
                doc["topic"]: doc["outcome"]
                for doc in map(json.loads, r.stdout.decode().splitlines())
                if "outcome" in doc
            }
            for r in runs
        ]
        assert outcomes[0] == dict.fromkeys(names.values(), "created")
        assert outcomes[1] == dict.fromkeys(names.values(), "exists")
        meta = kafka_admin.list_topics(timeout=10).topics
        assert {len(meta[t].partitions) for t in names.values()} == {4}
    finally:
        for future in kafka_admin.delete_topics(list(names.values())).values():
            future.result(30)


def test_a_stream_service_creates_its_missing_topics_when_it_starts(
    pipeline: Pipeline, kafka_admin: AdminClient
) -> None:
    """KAFKA_CREATE_TOPICS (the chart's default): no init container, no topics Job needed
    first; the service creates what is missing with the configured partitions and serves."""
    names = fresh_topic_env("own")
    assert not set(names.values()) & set(kafka_admin.list_topics(timeout=10).topics)
    try:
        service = pipeline.start(
            "featurize", **names, KAFKA_CREATE_TOPICS="true", KAFKA_TOPIC_PARTITIONS="3"
        )  # returns once /readyz answers 200
        meta = kafka_admin.list_topics(timeout=10).topics
        assert {len(meta[t].partitions) for t in names.values()} == {3}
        assert "created" in service.log_text()
    finally:
        for future in kafka_admin.delete_topics(list(names.values())).values():
            future.result(30)


def test_replayed_recording_is_scored_end_to_end_and_sigterm_exits_cleanly(
    pipeline: Pipeline, recordings: list[Path]
) -> None:
    recording = next(r for r in recordings if "btc-eth" in r.name)
    reference = reference_by_key(replayed(iter_ticks([recording])))
    expected = set(reference)
    featurizer = pipeline.start("featurize")
    consumer = pipeline.start("consume")
    replay = pipeline.replay([recording])
    _, err = replay.communicate(timeout=120)
    assert replay.returncode == 0, err
    log = PredictionLog(pipeline.broker.bootstrap_servers, pipeline.predictions, PARTITIONS)
    log.wait_for_keys(expected, 120, featurizer, consumer)
    assert set(assert_one_value_per_key(log, "clean run")) == expected
    features = TopicReader(pipeline.broker.bootstrap_servers, pipeline.features, PARTITIONS)
    wait_for(
        lambda: features.read() >= 0 and len(features.messages) >= len(expected), 30, "vectors"
    )
    assert_features_equal_reference(features, reference, "clean run")
    features.close()
    # Latency is traced from the tick's ingest through to the prediction.
    traced = [decode_prediction(v).trigger_time for v, _ in log.messages]
    assert all(t is not None for t in traced)
    assert consumer.metric("volatility_tick_to_prediction_seconds_count") >= len(expected)
    # Lag is reported every 0.5 s: the report after the last batch says the input is drained.
    wait_for(
        lambda: featurizer.metric('volatility_consumer_lag{group="featurizer-') == 0,
        30,
        "the featurizer to report zero lag",
        featurizer,
    )
    log.close()
    assert featurizer.stop() == 0, featurizer.log_text()
    assert consumer.stop() == 0, consumer.log_text()
