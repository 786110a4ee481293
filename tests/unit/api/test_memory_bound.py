"""Hostile bodies sent at once to `volatility serve` cost a bounded amount of memory.

The documented bound (README, "Limits"): the process's peak resident memory stays below its idle
resident memory plus ``API_BODY_BUFFER_BYTES`` plus six times ``API_MAX_BODY_BYTES`` (64 MiB +
96 MiB with the defaults), however many such requests arrive together. Every hostile body is
answered with a 4xx naming the problem; full-size legitimate batches sent alongside are scored.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from tests.unit.api.serve_process import serve
from volatility.api.settings import (
    DEFAULT_BODY_BUFFER_BYTES,
    DEFAULT_MAX_BATCH_ROWS,
    DEFAULT_MAX_BODY_BYTES,
)
from volatility.features.spec import FEATURE_NAMES

MiB = 1024 * 1024
N = len(FEATURE_NAMES)
LIMIT = DEFAULT_MAX_BODY_BYTES
BOUND = DEFAULT_BODY_BUFFER_BYTES + 6 * DEFAULT_MAX_BODY_BYTES
JSON = {"content-type": "application/json"}


def _kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert found, f"{field} not in /proc/{pid}/status"
    return int(found.group(1)) * 1024


def _filled(prefix: bytes, item: bytes, suffix: bytes) -> bytes:
    """``prefix item,item,... suffix`` of exactly the body limit or just under."""
    count = (LIMIT - len(prefix) - len(suffix) + 1) // (len(item) + 1)
    return prefix + b",".join([item] * count) + suffix


def _hostile() -> dict[str, tuple[str, bytes, int, str]]:
    """name -> (path, body, status, words of the answer)."""
    rows_limit = f"more than a request of {DEFAULT_MAX_BATCH_ROWS} rows holds"
    v2 = b'{"inputs":[{"name":"features","shape":[10000,%d],"datatype":"FP32","data":[' % N
    return {
        "empty arrays": ("/predict", _filled(b'{"rows":[', b"[]", b"]}"), 413, rows_limit),
        "empty objects": ("/predict", _filled(b'{"rows":[', b"{}", b"]}"), 413, rows_limit),
        "zeros": ("/predict", _filled(b'{"features":[', b"0", b"]}"), 413, rows_limit),
        "short strings": ("/predict", _filled(b'{"rows":[', b'"a"', b"]}"), 413, rows_limit),
        "v2 floats": ("/v2/models/baseline/infer", _filled(v2, b"0.5", b"]}]}"), 413, rows_limit),
        "deep": ("/predict", b"[" * LIMIT, 413, rows_limit),
        "one long string": (
            "/predict",
            b'{"features":"' + b"x" * (LIMIT - 15) + b'"}',
            422,
            "expected an object of features, got string",
        ),
        "over the limit": ("/predict", b" " * (LIMIT + 1), 413, "exceed the limit"),
    }


def _legitimate() -> bytes:
    rng = np.random.default_rng(3)
    values = rng.lognormal(size=(DEFAULT_MAX_BATCH_ROWS, N))
    rows = [dict(zip(FEATURE_NAMES, map(float, row), strict=True)) for row in values]
    return json.dumps({"instances": rows}).encode()


def _streamed(size: int) -> Iterator[bytes]:
    """A body without Content-Length (chunked), larger than the limit."""
    chunk = b" " * (256 * 1024)
    for _ in range(size // len(chunk) + 1):
        yield chunk


def test_concurrent_hostile_bodies_stay_within_the_memory_bound(model_dir: Path) -> None:
    hostile = _hostile()
    legitimate = _legitimate()
    answers: dict[str, tuple[int, str]] = {}
    errors: list[BaseException] = []

    def send(name: str, path: str, content: bytes | Iterator[bytes]) -> None:
        try:
            with httpx.Client(timeout=120) as client:
                response = client.post(url + path, content=content, headers=JSON)
                answers[name] = (response.status_code, response.text)
        except BaseException as exc:  # collected: a lost answer fails the test below
            errors.append(exc)

    with serve(model_dir) as server:
        url, pid = server.url, server.proc.pid
        with httpx.Client(base_url=url) as client:  # warm: first-request imports and arenas
            assert client.post("/predict", content=legitimate, headers=JSON).status_code == 200
        idle = _kib(pid, "VmRSS")
        threads = []
        for round_ in range(3):
            for name, (path, body, _, _) in hostile.items():
                threads.append(threading.Thread(target=send, args=(f"{name} {round_}", path, body)))
            threads.append(
                threading.Thread(
                    target=send, args=(f"chunked {round_}", "/predict", _streamed(LIMIT))
                )
            )
            threads.append(
                threading.Thread(target=send, args=(f"legitimate {round_}", "/predict", legitimate))
            )
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        peak = _kib(pid, "VmHWM")

    assert not errors
    assert len(answers) == len(threads)
    for name, (status, text) in answers.items():
        kind = name.rsplit(" ", 1)[0]
        if kind == "legitimate":
            assert status == 200, text
            assert json.loads(text)["count"] == DEFAULT_MAX_BATCH_ROWS
        elif kind == "chunked":
            assert status == 413, text
            assert "more than" in json.loads(text)["detail"]
        else:
            _, _, expected, words = hostile[kind]
            assert status == expected, (name, text)
            answer = json.loads(text)
            assert words in (answer.get("detail") or answer.get("error")), (name, text)
    grew = peak - idle
    print(f"idle {idle / MiB:.0f} MiB, peak {peak / MiB:.0f} MiB, bound +{BOUND / MiB:.0f} MiB")
    assert grew <= BOUND, f"peak memory grew by {grew / MiB:.0f} MiB, over {BOUND / MiB:.0f} MiB"
