"""Benchmark of the serving API: ``python -m volatility.api.bench``.

Starts the API as a subprocess (one uvicorn worker on 127.0.0.1, the shipped models) and loads
it from this process: a fixed-rate run and a max-throughput run for single-row requests, then
the same for batches (POST /predict with ``instances`` and the v2 infer endpoint). On a machine
with two or more CPUs, the server and this load generator are pinned to different CPUs so that
neither starves the other. Figures go to ``bench-results/api.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np

from volatility.api import loadgen
from volatility.features.spec import FEATURE_NAMES

TARGET_P99_MS = 2.0
TARGET_SINGLE_RPS = 5_000
TARGET_ROWS_PER_S = 200_000
READY_LINE = "Uvicorn running on"  # logged once the socket listens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _rows(n: int, seed: int = 7) -> np.ndarray:
    """Plausible feature values (positive, a few orders of magnitude)."""
    rng = np.random.default_rng(seed)
    return rng.lognormal(mean=0.0, sigma=1.5, size=(n, len(FEATURE_NAMES))).round(6)


def _named(rows: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(FEATURE_NAMES, map(float, r), strict=True)) for r in rows]


def payloads(batch_rows: int) -> dict[str, tuple[str, bytes, int]]:
    """Scenario name -> (path, JSON body, rows per request)."""
    single = _named(_rows(1))[0]
    batch = _rows(batch_rows)
    v2 = {
        "inputs": [
            {
                "name": "features",
                "shape": list(batch.shape),
                "datatype": "FP32",
                "data": batch.ravel().tolist(),
            }
        ]
    }
    return {
        "single": ("/predict", json.dumps({"features": single}).encode(), 1),
        "batch": ("/predict", json.dumps({"instances": _named(batch)}).encode(), batch_rows),
        "v2_batch": ("/v2/models/baseline/infer", json.dumps(v2).encode(), batch_rows),
    }


class Server:
    """The API in a subprocess; ready once uvicorn reports that start-up completed."""

    def __init__(self, port: int, cpus: set[int] | None) -> None:
        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "volatility.api", "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=pin,
        )
        self.ready = threading.Event()
        self.lines: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stdout or ():
            self.lines.append(line.rstrip())
            if READY_LINE in line:
                self.ready.set()
        self.ready.set()  # exited: wake the waiter, which checks poll()

    def wait_ready(self, timeout: float) -> None:
        if not self.ready.wait(timeout) or self.proc.poll() is not None:
            tail = "\n".join(self.lines[-20:])
            raise RuntimeError(f"the API did not start:\n{tail}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _summary(name: str, outcome: loadgen.Outcome, rows: int, **extra: Any) -> dict[str, Any]:
    rps = outcome.completed / outcome.elapsed if outcome.elapsed else 0.0
    result: dict[str, Any] = {
        "name": name,
        **extra,
        "duration_s": round(outcome.elapsed, 3),
        "requests": outcome.completed,
        "non_200": outcome.completed - outcome.ok,
        "failures": outcome.failures,
        "statuses": {str(k): v for k, v in sorted(outcome.statuses.items())},
        "requests_per_s": round(rps, 1),
        "rows_per_s": round(rps * rows, 1),
        "latency_ms": loadgen.percentiles_ms(outcome.due),
    }
    if extra.get("mode") == "fixed_rate":
        result["latency_from_send_ms"] = loadgen.percentiles_ms(outcome.sent)
        result["client_send_lag_ms"] = loadgen.percentiles_ms(outcome.lag)
    return result


def _print(result: dict[str, Any]) -> None:
    lat = result["latency_ms"]
    print(  # noqa: T201 - a command-line report
        f"{result['name']:>14}: {result['requests_per_s']:>9.1f} req/s "
        f"{result['rows_per_s']:>11.1f} rows/s  p50 {lat.get('p50')} p90 {lat.get('p90')} "
        f"p99 {lat.get('p99')} max {lat.get('max')} ms  non-200 {result['non_200']} "
        f"failures {result['failures']}"
        + (
            f"  client lag p99 {result['client_send_lag_ms'].get('p99')} ms"
            if "client_send_lag_ms" in result
            else ""
        ),
        flush=True,
    )


def _run(coro_factory: Callable[[], Coroutine[Any, Any, loadgen.Outcome]]) -> loadgen.Outcome:
    # The client needs less CPU per request on uvloop, as the server does.
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro_factory())
    return uvloop.run(coro_factory())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m volatility.api.bench", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0, help="single-row req/s (fixed)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per fixed-rate run")
    parser.add_argument("--saturate", type=float, default=10.0, help="seconds per max run")
    parser.add_argument("--batch-rows", type=int, default=1000, help="rows per batch request")
    parser.add_argument("--batch-rate", type=float, default=50.0, help="batch req/s (fixed)")
    parser.add_argument("--connections", type=int, default=16, help="client connections")
    parser.add_argument("--out", type=Path, default=Path("bench-results/api.json"))
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client")
    args = parser.parse_args(argv)

    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cpus) >= 2
    server_cpus = {cpus[0]} if pin else None
    if pin:
        os.sched_setaffinity(0, set(cpus[1:]))
    port = _free_port()
    bodies = payloads(args.batch_rows)
    load_before = os.getloadavg()
    server = Server(port, server_cpus)
    results: list[dict[str, Any]] = []
    try:
        server.wait_ready(timeout=60)
        host = "127.0.0.1"
        req = {k: loadgen.build_request(host, port, p, b) for k, (p, b, _) in bodies.items()}
        rows = {k: n for k, (_, _, n) in bodies.items()}
        # Warm-up: code paths, allocator, onnxruntime arenas.
        _run(lambda: loadgen.saturate(host, port, req["single"], 2.0, args.connections))
        _run(lambda: loadgen.saturate(host, port, req["batch"], 1.0, 2))
        plan: list[
            tuple[str, str, Callable[[], Coroutine[Any, Any, loadgen.Outcome]], dict[str, Any]]
        ]
        plan = [
            (
                "single_fixed",
                "single",
                lambda: loadgen.fixed_rate(
                    host, port, req["single"], args.rate, args.duration, args.connections
                ),
                {"mode": "fixed_rate", "target_rps": args.rate},
            ),
            (
                "single_max",
                "single",
                lambda: loadgen.saturate(
                    host, port, req["single"], args.saturate, args.connections
                ),
                {"mode": "saturate", "connections": args.connections},
            ),
            (
                "batch_fixed",
                "batch",
                lambda: loadgen.fixed_rate(
                    host, port, req["batch"], args.batch_rate, args.duration, args.connections
                ),
                {"mode": "fixed_rate", "target_rps": args.batch_rate},
            ),
            (
                "batch_max",
                "batch",
                lambda: loadgen.saturate(host, port, req["batch"], args.saturate, 4),
                {"mode": "saturate", "connections": 4},
            ),
            (
                "v2_batch_max",
                "v2_batch",
                lambda: loadgen.saturate(host, port, req["v2_batch"], args.saturate, 4),
                {"mode": "saturate", "connections": 4},
            ),
        ]
        for name, kind, factory, extra in plan:
            outcome = _run(factory)
            result = _summary(name, outcome, rows[kind], rows_per_request=rows[kind], **extra)
            results.append(result)
            _print(result)
    finally:
        server.stop()

    by_name = {r["name"]: r for r in results}
    targets = {
        "p99_ms_at_fixed_rate": {
            "target": TARGET_P99_MS,
            "measured": by_name["single_fixed"]["latency_ms"]["p99"],
        },
        "single_requests_per_s": {
            "target": TARGET_SINGLE_RPS,
            "measured": by_name["single_max"]["requests_per_s"],
        },
        "batch_rows_per_s": {
            "target": TARGET_ROWS_PER_S,
            "measured": max(
                by_name["batch_max"]["rows_per_s"], by_name["v2_batch_max"]["rows_per_s"]
            ),
        },
    }
    targets["p99_ms_at_fixed_rate"]["met"] = (
        targets["p99_ms_at_fixed_rate"]["measured"] <= TARGET_P99_MS
    )
    for key in ("single_requests_per_s", "batch_rows_per_s"):
        targets[key]["met"] = targets[key]["measured"] >= targets[key]["target"]
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": len(cpus),
            "pinned": {"server": sorted(server_cpus or []), "client": cpus[1:] if pin else []},
            "python": platform.python_version(),
            "platform": platform.platform(),
            # Other work on the machine skews every figure: recorded to read them against.
            "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        },
        "server": _server_stack(),
        "runs": results,
        "targets": targets,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")  # noqa: T201
    return 0


def _server_stack() -> dict[str, str]:
    """What the server process runs on (same interpreter and packages as this one)."""
    import importlib.util

    from volatility.api.jsonio import BACKEND

    def has(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    return {
        "workers": "1",
        "http": "httptools" if has("httptools") else "h11",
        "loop": "uvloop" if has("uvloop") else "asyncio",
        "json": BACKEND,
    }


if __name__ == "__main__":
    raise SystemExit(main())
