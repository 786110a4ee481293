"""``volatility serve`` as a child process on loopback, for tests that need a real server."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra.ports import free_port

LISTENING = "Uvicorn running on"
NOT_JSON = "__not_json__"


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
            try:
                self.records.put(json.loads(line))
            except ValueError:
                self.records.put({NOT_JSON: line})  # fails the waiting test below
        self.records.put(None)

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        while True:
            record = self.records.get(timeout=timeout)
            if record is None:
                pytest.fail("server exited:\n" + "".join(self.seen[-20:]))
            if NOT_JSON in record:
                pytest.fail(f"a log line on stdout is not JSON: {record[NOT_JSON]!r}")
            if match(record):
                return record


@dataclass
class ServeProcess:
    url: str
    port: int
    proc: subprocess.Popen[str]
    lines: JsonLines
    # Native libraries log to stderr by themselves (librdkafka's connection errors).
    stderr: list[str]


@contextmanager
def serve(model_dir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[ServeProcess]:
    """``volatility serve`` on a free loopback port, listening when this yields."""
    port = free_port()
    environ = {**os.environ, "LOG_FORMAT": "json", **(env or {})}
    environ.pop("MODEL_VARIANT", None)
    command = [sys.executable, "-m", "volatility.api", "--port", str(port)]
    command += ["--model-dir", str(model_dir), *args]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ
    )
    lines = JsonLines(proc)
    stderr: list[str] = []
    threading.Thread(target=lambda: stderr.extend(proc.stderr or ()), daemon=True).start()
    try:
        lines.wait_for(lambda r: LISTENING in r.get("message", ""))
        yield ServeProcess(f"http://127.0.0.1:{port}", port, proc, lines, stderr)
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
