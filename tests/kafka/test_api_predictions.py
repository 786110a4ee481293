"""`volatility serve` reading the predictions topic on a real broker: latest per product, the live
stream (followed with curl -N), and a broker that is missing, killed or back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from confluent_kafka import Producer

from tests.infra.kafka_broker import KafkaBroker, TopicFactory
from tests.infra.ports import free_port
from tests.unit.api.serve_process import ServeProcess, serve
from tests.unit.api.test_predictions_feed import events, latest, prediction, wait_until
from volatility.api.predictions import TAIL
from volatility.messages import Prediction, encode_prediction
from volatility.settings import DEFAULT_MODEL_DIR


@contextmanager
def api_on(bootstrap: str, topic: str) -> Iterator[ServeProcess]:
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC_PREDICTIONS": topic}
    with serve(DEFAULT_MODEL_DIR, "--predictions", "kafka", env=env) as process:
        yield process


def publish(broker: KafkaBroker, topic: str, *predictions: Prediction) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for p in predictions:
        producer.produce(topic, encode_prediction(p), p.product_id)
    assert producer.flush(30) == 0, "predictions not acknowledged by the broker"


def test_latest_and_stream_from_the_predictions_topic(
    kafka_broker: KafkaBroker, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics(partitions=3)
    # Written before the API starts: a new reader starts within the partitions' tails.
    publish(kafka_broker, topic, prediction("ETH-USD", 0.2, age=30), prediction("BTC-USD", 0.6))
    with api_on(kafka_broker.bootstrap_servers, topic) as api:
        body = wait_until(
            lambda: (b := latest(api.url)) and len(b["predictions"]) == 2 and b,
            what="the predictions already in the topic",
        )
        assert body["source"] == f"kafka {kafka_broker.bootstrap_servers} {topic}"
        ages = {p["product_id"]: p["age_seconds"] for p in body["predictions"]}
        assert ages["ETH-USD"] >= 29.9
        with events(f"{api.url}/predictions/stream?product=BTC-USD") as stream:
            kind, data = stream.next_event()
            assert (kind, data["score"]) == ("latest", 0.6)
            publish(kafka_broker, topic, prediction("ETH-USD", 0.3), prediction("BTC-USD", 0.9))
            kind, data = stream.next_event()
            assert (kind, data["product_id"], data["score"], data["spike"]) == (
                "prediction",
                "BTC-USD",
                0.9,
                True,
            )
        wait_until(
            lambda: {p["score"] for p in latest(api.url)["predictions"]} == {0.3, 0.9},
            what="the new latest predictions",
        )


def test_a_starting_api_reads_the_tail_of_the_topic_not_all_of_it(
    kafka_broker: KafkaBroker, kafka_topics: TopicFactory
) -> None:
    """A week of predictions is retained; a new pod reads the last TAIL of each partition."""
    topic = kafka_topics(partitions=1)
    history = 3 * TAIL
    publish(
        kafka_broker,
        topic,
        *(prediction("BTC-USD", i / history, age=history - i) for i in range(history)),
    )
    with api_on(kafka_broker.bootstrap_servers, topic) as api:
        wait_until(
            lambda: (
                [p["score"] for p in latest(api.url)["predictions"]] == [(history - 1) / history]
            ),
            what="the last prediction of the topic",
        )
        metrics = httpx.get(f"{api.url}/metrics", timeout=10).text
        read = [
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("volatility_api_predictions_read_total")
        ]
        assert read == [TAIL]


def test_missing_broker_leaves_the_api_serving(kafka_broker: KafkaBroker) -> None:
    nothing_listens = f"127.0.0.1:{free_port()}"
    with (
        api_on(nothing_listens, "volatility.predictions.v1") as api,
        httpx.Client(timeout=30) as client,
    ):
        assert client.get(f"{api.url}/ready").status_code == 200
        body = client.get(f"{api.url}/predictions/latest").json()
        assert body["predictions"] == []
        assert body["last_received_seconds_ago"] is None
        version = client.get(f"{api.url}/version").json()
        row = dict.fromkeys(version["feature_names"], 1.0)
        assert client.post(f"{api.url}/predict", json={"features": row}).status_code == 200


def test_broker_outage_then_recovery(kafka_broker: KafkaBroker, kafka_topics: TopicFactory) -> None:
    topic = kafka_topics(partitions=1)
    with api_on(kafka_broker.bootstrap_servers, topic) as api:
        publish(kafka_broker, topic, prediction("BTC-USD", 0.1))
        wait_until(lambda: latest(api.url)["predictions"], what="the first prediction")
        kafka_broker.kill()
        try:
            started = time.monotonic()
            body = httpx.get(f"{api.url}/predictions/latest", timeout=30).json()
            # Nothing on the request's path waits on the broker (whose clients time out in tens
            # of seconds); the margin is for a loaded machine.
            assert time.monotonic() - started < 5, "the API waited on the broker"
            assert [p["score"] for p in body["predictions"]] == [0.1]  # the last one known
        finally:
            kafka_broker.restart()
        publish(kafka_broker, topic, prediction("BTC-USD", 0.7))
        wait_until(
            lambda: [p["score"] for p in latest(api.url)["predictions"]] == [0.7],
            timeout=90,
            what="a prediction published after the broker came back",
        )


def test_every_replica_sees_every_product(
    kafka_broker: KafkaBroker, kafka_topics: TopicFactory
) -> None:
    """Two API processes on one topic of several partitions: a group each, all products each."""
    topic = kafka_topics(partitions=3)
    products = [f"P{i}-USD" for i in range(6)]  # keys spread over the three partitions
    with (
        api_on(kafka_broker.bootstrap_servers, topic) as first,
        api_on(kafka_broker.bootstrap_servers, topic) as second,
    ):
        publish(kafka_broker, topic, *(prediction(p, 0.1 * i) for i, p in enumerate(products)))
        for api in (first, second):

            def sees_all(url: str = api.url) -> bool:
                return {p["product_id"] for p in latest(url)["predictions"]} == set(products)

            wait_until(sees_all, what=f"every product at {api.url}")
