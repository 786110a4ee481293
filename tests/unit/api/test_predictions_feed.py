"""/predictions/latest and /predictions/stream on a real server (uvicorn on loopback), fed by the
in-process bus as `volatility up` feeds them. Kafka: tests/kafka/test_api_predictions.py.
"""

from __future__ import annotations

import json
import queue
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from tests.unit.api.conftest import api_settings
from volatility.api.app import create_app
from volatility.bus.memory import MemoryBus
from volatility.messages import Prediction, encode_prediction
from volatility.names import TOPIC_PREDICTIONS

WAIT = 30.0


def prediction(product: str, score: float, age: float = 2.0) -> Prediction:
    return Prediction(product, time.time() - age, score, score >= 0.5, "baseline", "v1", 0.5)


def wait_until(check: Callable[[], Any], timeout: float = WAIT, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    idle = threading.Event()
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        idle.wait(0.02)


@dataclass
class Served:
    url: str
    bus: MemoryBus

    def publish(self, *predictions: Prediction) -> None:
        for p in predictions:
            self.bus.publish(TOPIC_PREDICTIONS, p.product_id, encode_prediction(p))


@contextmanager
def served(model_dir: Path, **settings: Any) -> Iterator[Served]:
    bus = MemoryBus()
    app = create_app(api_settings(model_dir, **settings), bus=bus)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.started, what="the server to start")
        yield Served(url, bus)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def latest(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/predictions/latest")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def counters(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text

    def value(name: str) -> float:
        found = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    return {
        "read": value("volatility_api_predictions_read_total"),
        "rejected": value("volatility_api_predictions_rejected_total"),
    }


class Events:
    """A Server-Sent Events stream followed by ``curl -N`` (as a user would), read in a thread:
    (event, data) pairs, and the comment and retry lines."""

    def __init__(self, url: str) -> None:
        self.items: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self._curl = subprocess.Popen(
            ["curl", "--silent", "--include", "--no-buffer", url],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.status = 0
        self.headers: dict[str, str] = {}
        self._lines = iter(self._curl.stdout or ())
        for line in self._lines:  # the response head, sent at once
            line = line.rstrip("\r\n")
            if not line:
                break
            if line.startswith("HTTP/"):
                self.status = int(line.split()[1])
            else:
                key, _, value = line.partition(":")
                self.headers[key.lower()] = value.strip()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        lines = self._lines
        event = "message"
        for raw in lines:
            line = raw.rstrip("\n")
            if line.startswith(":"):
                self.items.put(("comment", line))
            elif line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                self.items.put((event, json.loads(line[len("data: ") :])))
                event = "message"
            elif line.startswith("retry: "):
                self.items.put(("retry", line))
        self.items.put(None)

    def next(self, timeout: float = WAIT) -> tuple[str, Any]:
        try:
            item = self.items.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no event within {timeout:.0f} s")
        if item is None:
            pytest.fail("the stream ended")
        return item

    def next_event(self, timeout: float = WAIT) -> tuple[str, Any]:
        while True:
            kind, data = self.next(timeout)
            if kind not in ("comment", "retry"):
                return kind, data

    def close(self) -> None:
        self._curl.terminate()
        self._curl.wait(timeout=30)


@contextmanager
def events(url: str) -> Iterator[Events]:
    stream = Events(url)
    try:
        yield stream
    finally:
        stream.close()


def test_latest_prediction_per_product_with_its_age(model_dir: Path) -> None:
    with served(model_dir) as api:
        before = counters(api.url)  # the process's metrics: other tests may have counted
        body = latest(api.url)
        assert body == {
            "source": "in-process",
            "last_received_seconds_ago": None,
            "predictions": [],
        }
        older = prediction("BTC-USD", 0.99, age=20.0)
        api.publish(prediction("ETH-USD", 0.2, age=5.0), prediction("BTC-USD", 0.9), older)
        api.bus.publish(TOPIC_PREDICTIONS, "BTC-USD", b"{not json")
        body = wait_until(
            lambda: (b := latest(api.url)) and len(b["predictions"]) == 2 and b,
            what="both products",
        )
        got = {p["product_id"]: p for p in body["predictions"]}
        # Later in the topic but earlier in event time: it does not replace the newer one.
        assert got["BTC-USD"]["score"] == 0.9
        assert got["ETH-USD"]["score"] == 0.2
        assert got["BTC-USD"]["spike"] is True
        assert 4.9 <= got["ETH-USD"]["age_seconds"] < 5.0 + WAIT
        assert 1.9 <= got["BTC-USD"]["age_seconds"] < 2.0 + WAIT
        assert body["last_received_seconds_ago"] is not None
        after = counters(api.url)
        assert after["read"] - before["read"] == 3
        assert after["rejected"] - before["rejected"] == 1


def test_stream_sends_the_latest_then_every_new_prediction(model_dir: Path) -> None:
    with served(model_dir) as api:
        api.publish(prediction("ETH-USD", 0.3))
        wait_until(lambda: latest(api.url)["predictions"], what="the first prediction")
        with events(f"{api.url}/predictions/stream") as stream:
            assert stream.status == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.next() == ("retry", "retry: 2000")
            kind, data = stream.next_event()
            assert (kind, data["product_id"], data["score"]) == ("latest", "ETH-USD", 0.3)
            fresh = [prediction("BTC-USD", 0.7), prediction("ETH-USD", 0.1)]
            api.publish(*fresh)
            for expected in fresh:
                kind, data = stream.next_event()
                assert kind == "prediction"
                assert (data["product_id"], data["score"]) == (expected.product_id, expected.score)
                assert data["spike"] is expected.spike
                assert data["age_seconds"] >= 1.9
            # History read while catching up updates the latest, but is not news.
            api.publish(prediction("SOL-USD", 0.4, age=3600.0), prediction("BTC-USD", 0.2))
            kind, data = stream.next_event()
            assert (kind, data["product_id"]) == ("prediction", "BTC-USD")
            assert "SOL-USD" in {p["product_id"] for p in latest(api.url)["predictions"]}


def test_stream_filters_by_product_and_spike(model_dir: Path) -> None:
    with (
        served(model_dir) as api,
        events(f"{api.url}/predictions/stream?spikes=true") as spikes,
        events(f"{api.url}/predictions/stream?product=ETH-USD") as eth,
    ):
        # Each stream listens once its first line is sent.
        assert spikes.next() == ("retry", "retry: 2000")
        assert eth.next() == ("retry", "retry: 2000")
        api.publish(
            prediction("BTC-USD", 0.1),
            prediction("ETH-USD", 0.2),
            prediction("BTC-USD", 0.8),
            prediction("ETH-USD", 0.9),
        )
        assert [spikes.next_event()[1]["score"] for _ in range(2)] == [0.8, 0.9]
        assert [eth.next_event()[1]["score"] for _ in range(2)] == [0.2, 0.9]


def test_idle_stream_keeps_alive_and_clients_are_bounded(model_dir: Path) -> None:
    with (
        served(model_dir, stream_keepalive_seconds=0.1, stream_max_clients=1) as api,
        events(f"{api.url}/predictions/stream") as first,
    ):
        assert first.next() == ("retry", "retry: 2000")
        assert first.next() == ("comment", ": keep-alive")
        response = httpx.get(f"{api.url}/predictions/stream")
        assert response.status_code == 503
        assert "1 clients already follow the stream" in response.json()["detail"]


def test_a_process_without_a_stream_says_how_to_get_one(model_dir: Path) -> None:
    with TestClient(create_app(api_settings(model_dir))) as client:
        for path in ("/predictions/latest", "/predictions/stream"):
            response = client.get(path)
            assert response.status_code == 404
            assert "API_PREDICTIONS_SOURCE=kafka" in response.json()["detail"]


def test_volatility_up_serves_the_pipelines_predictions() -> None:
    """The embedded pipeline (`volatility up`): simulator -> bus -> features -> model -> API."""
    from volatility.exchange.simulator.server import start_simulator
    from volatility.exchange.simulator.sources import synthetic_source
    from volatility.local import SIMULATOR_PREROLL_SECONDS, EmbeddedPipeline
    from volatility.settings import DEFAULT_MODEL_DIR

    products = ("BTC-USD", "ETH-USD")
    source = synthetic_source(7, products, start_time=time.time() - SIMULATOR_PREROLL_SECONDS)
    sim = start_simulator(source, speed=1.0, timestamps="keep", preroll=SIMULATOR_PREROLL_SECONDS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pipeline = EmbeddedPipeline(
        url=sim.url,
        products=products,
        model_dir=DEFAULT_MODEL_DIR,
        variant="baseline",
        tick_source="simulator",
        api_port=port,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        pipeline.start()
        with events(f"{url}/predictions/stream") as stream:
            kind, data = stream.next_event(timeout=120)
            assert kind in ("latest", "prediction")
            assert data["product_id"] in products
            body = wait_until(
                lambda: (b := latest(url)) and len(b["predictions"]) == len(products) and b,
                timeout=120,
                what="a prediction of every product",
            )
    finally:
        pipeline.stop()
        sim.stop()
    assert body["source"] == "in-process"
    seen = pipeline.recent.latest()
    for p in body["predictions"]:
        assert p["event_time"] <= seen[p["product_id"]].event_time
        assert p["age_seconds"] >= 0
