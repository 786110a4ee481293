"""``volatility serve`` as a process: JSON logs, the models on disk, SIGHUP reloads them."""

from __future__ import annotations

import argparse
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.unit.api.conftest import write_ml_model
from tests.unit.api.serve_process import JsonLines, serve
from tests.unit.api.test_variant_switch import write_variant
from volatility.api.command import add_serve_arguments
from volatility.scoring.contract import model_path


@pytest.fixture
def served_dir(model_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for v in ("baseline", "ml"):
        model_path(root, v).parent.mkdir(parents=True)
        model_path(root, v).write_bytes(model_path(model_dir, v).read_bytes())
    return root


@pytest.fixture
def server(
    served_dir: Path, tmp_path: Path
) -> Iterator[tuple[str, JsonLines, subprocess.Popen[str], Path]]:
    variant_file = tmp_path / "variant"
    write_variant(variant_file, "baseline")
    # The file is polled only hourly: changes are picked up by SIGHUP alone.
    env = {"API_VARIANT_POLL_SECONDS": "3600"}
    with serve(served_dir, "--variant-file", str(variant_file), env=env) as server:
        yield server.url, server.lines, server.proc, variant_file


def test_sighup_reloads_models_and_reads_the_variant_file(
    server: tuple[str, JsonLines, subprocess.Popen[str], Path], served_dir: Path
) -> None:
    url, lines, proc, variant_file = server
    with httpx.Client(base_url=url) as client:
        assert client.get("/version").json()["variant"] == "baseline"
        # The file is polled only hourly here: the change below is picked up by SIGHUP alone.
        write_ml_model(model_path(served_dir, "ml"), version="test-ml-2")
        write_variant(variant_file, "ml")
        proc.send_signal(signal.SIGHUP)
        record = lines.wait_for(lambda r: r.get("message") == "serving model")
        assert (record["variant"], record["model_version"]) == ("ml", "test-ml-2")
        version = client.get("/version").json()
        assert (version["variant"], version["model_version"]) == ("ml", "test-ml-2")
        assert client.get("/ready").status_code == 200
    proc.terminate()
    lines.wait_for(lambda r: "Application shutdown complete" in r.get("message", ""))
    # uvicorn re-raises the signal once it has shut down gracefully.
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)


def test_serve_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(["--port", "0", "--variant", "ml"])
    assert (args.host, args.port, args.workers, args.variant) == ("127.0.0.1", 0, 1, "ml")
    with pytest.raises(SystemExit):
        parser.parse_args(["--variant", "gpt"])
