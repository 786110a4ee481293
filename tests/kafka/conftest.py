"""Fixtures for tests against a real Kafka broker: one broker per session, fresh topics per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.infra.kafka_broker import KafkaBroker, TopicFactory
from tests.kafka.pipeline import Pipeline

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The hook sees every collected item of the session, not only this directory's.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    with KafkaBroker() as broker:
        yield broker


@pytest.fixture(autouse=True)
def _kafka_broker_alive(kafka_broker: KafkaBroker) -> Iterator[None]:
    # A fault test that fails between kill() and restart() must not take the tests after it down.
    yield
    if not kafka_broker.is_running:
        kafka_broker.restart()


@pytest.fixture(scope="session")
def kafka_admin(kafka_broker: KafkaBroker) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})


@pytest.fixture
def kafka_topics(
    kafka_admin: AdminClient,
    kafka_broker: KafkaBroker,
    request: pytest.FixtureRequest,
) -> Iterator[TopicFactory]:
    """``kafka_topics(partitions=3)`` returns the name of a new, empty topic for this test."""
    factory = TopicFactory(kafka_admin, request.node.name)
    yield factory
    if not kafka_broker.is_running:
        kafka_broker.restart()
    factory.delete_all()


@pytest.fixture
def pipeline(
    kafka_broker: KafkaBroker, kafka_topics: TopicFactory, tmp_path: Path
) -> Iterator[Pipeline]:
    """Topics of its own and `volatility` services started on demand, stopped afterwards."""
    p = Pipeline.create(kafka_broker, kafka_topics, tmp_path)
    yield p
    p.close()
