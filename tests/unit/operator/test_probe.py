"""Pod probes read what the real services report: `volatility serve` and the consumer's
health server, each running here on loopback."""

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

from volatility.runtime import Health, serve_health_and_metrics
from volatility_operator.observed import Report, serving
from volatility_operator.probe import parse_version, probe_pod


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


def test_consumer_pod_reports_through_its_metrics_port_version() -> None:
    """The consumer's health server answers /version with what the service described; until
    the model is loaded the pod has nothing to report."""
    health = Health()
    port = _port()
    server = serve_health_and_metrics(port, health)
    try:
        starting = probe_pod(_pod("metrics", port), "consumer")
        health.describe(service="consumer", variant="ml", model_version="probe-test-7")
        report = probe_pod(_pod("metrics", port), "consumer")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=5) as r:
            doc = json.load(r)
    finally:
        server.shutdown()
    assert starting.variant is None and "503" in (starting.error or "")
    assert (report.variant, report.version, report.error) == ("ml", "probe-test-7", None)
    assert doc == {"service": "consumer", "variant": "ml", "model_version": "probe-test-7"}


def test_an_answer_that_is_not_a_version_is_an_error() -> None:
    assert parse_version(b'{"variant": "ml", "model_version": "v"}') == Report("ml", "v")
    for body in (b"[1]", b"not json"):
        with pytest.raises(ValueError):
            parse_version(body)


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
