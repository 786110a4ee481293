"""``volatility serve`` as a process: JSON logs, the models on disk, SIGHUP reloads them."""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.api.conftest import write_ml_model
from tests.unit.api.test_variant_switch import write_variant
from volatility.api.command import add_serve_arguments
from volatility.scoring.contract import model_path


class JsonLines:
    """The process's stdout, one JSON record per line, read in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.records: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[str] = []
        self._proc = proc
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._proc.stdout or ():
            self.seen.append(line)
            self.records.put(json.loads(line))  # a non-JSON line fails the test below
        self.records.put(None)

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        while True:
            record = self.records.get(timeout=timeout)
            if record is None:
                pytest.fail("server exited:\n" + "".join(self.seen[-20:]))
            if match(record):
                return record


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
    port = _free_port()
    env = {**os.environ, "API_VARIANT_POLL_SECONDS": "3600", "LOG_FORMAT": "json"}
    env.pop("MODEL_VARIANT", None)
    command = [sys.executable, "-m", "volatility.api", "--port", str(port)]
    command += ["--model-dir", str(served_dir), "--variant-file", str(variant_file)]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines = JsonLines(proc)
    try:
        lines.wait_for(lambda r: "Uvicorn running on" in r.get("message", ""))  # listening
        yield f"http://127.0.0.1:{port}", lines, proc, variant_file
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)


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
