"""Pod probes read what the real services report: `volatility serve` and the consumer's
metrics endpoint, each running here on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import generate_latest

from volatility import metrics
from volatility.runtime import Health, serve_health_and_metrics
from volatility_operator.observed import serving
from volatility_operator.probe import MODEL_INFO_METRIC, parse_model_info, probe_pod


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pod(role_port: str, port: int) -> dict[str, Any]:
    return {
        "status": {"podIP": "127.0.0.1"},
        "spec": {
            "containers": [{"name": "c", "ports": [{"name": role_port, "containerPort": port}]}]
        },
    }


@pytest.fixture(scope="module")
def api_ml() -> Iterator[int]:
    """`volatility serve --variant ml` with the shipped models."""
    port = _port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "volatility.cli", "serve", "--port", str(port), "--variant", "ml"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "LOG_FORMAT": "text"},
    )
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"volatility serve did not get ready: {proc.stderr}")
            time.sleep(0.1)  # polling the readiness endpoint against the deadline above
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_api_pod_reports_its_variant_and_version(api_ml: int) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{api_ml}/version", timeout=5) as r:
        version = json.load(r)
    report = probe_pod(_pod("http", api_ml), "api")
    assert report.error is None
    assert report.variant == "ml"
    assert report.version == version["model_version"]


def test_consumer_pod_reports_through_its_model_info_metric() -> None:
    assert metrics.MODEL_INFO._name == MODEL_INFO_METRIC  # one name, the services' own
    metrics.MODEL_INFO.clear()  # what in-process consumer loops of other tests left behind
    metrics.MODEL_INFO.labels("consumer", "ml", "probe-test-7").set(1)
    port = _port()
    server = serve_health_and_metrics(port, Health())
    try:
        report = probe_pod(_pod("metrics", port), "consumer")
    finally:
        server.shutdown()
        metrics.MODEL_INFO.remove("consumer", "ml", "probe-test-7")
    assert (report.variant, report.version, report.error) == ("ml", "probe-test-7", None)


def test_model_info_parsing_of_a_real_exposition() -> None:
    metrics.MODEL_INFO.clear()  # what in-process consumer loops of other tests left behind
    metrics.MODEL_INFO.labels("consumer", "baseline", "b-1").set(1)
    metrics.MODEL_INFO.labels("other", "ml", "x").set(1)
    try:
        text = generate_latest().decode()
    finally:
        metrics.MODEL_INFO.remove("consumer", "baseline", "b-1")
        metrics.MODEL_INFO.remove("other", "ml", "x")
    report = parse_model_info(text)
    assert (report.variant, report.version) == ("baseline", "b-1")
    assert parse_model_info("").error is not None


def test_an_unreachable_pod_gives_an_error_not_an_exception() -> None:
    report = probe_pod(_pod("http", _port()), "api", timeout=1)
    assert report.variant is None and report.error is not None
    assert probe_pod({"status": {}, "spec": {}}, "api").error is not None


def test_only_ready_pods_that_are_not_terminating_are_asked() -> None:
    """A terminating pod's address may be gone (a whole timeout per look), an unready one has
    nothing to say yet; `progress` judges neither."""
    ready = {"type": "Ready", "status": "True"}
    pod = {"metadata": {"name": "p"}, "status": {"conditions": [ready]}}
    assert serving(pod)
    assert not serving({**pod, "status": {"conditions": [{**ready, "status": "False"}]}})
    assert not serving({**pod, "metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00Z"}})
    assert not serving({"metadata": {"name": "p"}})
