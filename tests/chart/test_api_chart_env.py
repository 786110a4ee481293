"""The API's pods are configured to read the predictions topic (/predictions/*)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.chart.test_chart_render import REPO, by_kind, component, env_of, render


@pytest.fixture(scope="module")
def helm_bin() -> str:
    proc = subprocess.run(
        ["bash", str(REPO / "tests" / "infra" / "provision-tools.sh")],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(Path(proc.stdout.strip().splitlines()[-1]) / "helm")


def test_api_reads_the_predictions_topic_from_the_shared_kafka_settings(helm_bin: str) -> None:
    docs = render(helm_bin)
    (api,) = [d for d in by_kind(docs, "Deployment").values() if component(d) == "api"]
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["API_PREDICTIONS_SOURCE"] == "kafka"
    (config_map,) = [c["configMapRef"]["name"] for c in container["envFrom"] if "configMapRef" in c]
    shared = by_kind(docs, "ConfigMap")[config_map]["data"]
    assert shared["KAFKA_BOOTSTRAP_SERVERS"]
