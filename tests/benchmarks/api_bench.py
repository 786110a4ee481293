"""Benchmark of the serving API: ``make bench-api`` (``python -m tests.benchmarks.api_bench``).

The API (``volatility serve``: one uvicorn worker, the shipped models) runs as a subprocess and
this process loads it with :mod:`tests.benchmarks.loadgen`:

- open-loop fixed rates of single-row requests (20/s and 1,000/s), latency counted from each
  request's scheduled send time, so a stalled server is not hidden by a waiting client;
- saturation with single rows (closed loop over several connections);
- 1,000-row batches at saturation: POST /predict, v2 infer with JSON data and with the binary
  tensor extension.

The same load runs against the floor (:mod:`tests.benchmarks.api_floor`: the same server stack
answering a fixed document), the two taking turns in slices of a few seconds, and every figure
is reported beside the floor's and as a ratio to it. Server and load generator are pinned to
different CPUs when there are two or more. The machine's load average (lowest and highest seen
during a run) is recorded beside every figure: other work skews them all.
Figures go to ``bench-results/api.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.benchmarks import loadgen
from volatility.features.spec import FEATURE_NAMES

TARGETS = {
    "p99_ms_at_20_per_s": 1.0,
    "p99_ms_at_1000_per_s": 2.0,
    "single_requests_per_s": 10_000,
    "batch_rows_per_s": 400_000,
}
READY_LINE = "Uvicorn running on"
SLICE_SECONDS = 5.0  # logged once the socket listens
N = len(FEATURE_NAMES)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _rows(n: int, seed: int = 7) -> np.ndarray:
    """Plausible feature values (positive, a few orders of magnitude)."""
    rng = np.random.default_rng(seed)
    return rng.lognormal(mean=0.0, sigma=1.5, size=(n, N)).round(6)


def _named(rows: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(FEATURE_NAMES, map(float, r), strict=True)) for r in rows]


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    rows: int
    headers: dict[str, str] | None = None


def requests(batch_rows: int) -> dict[str, Request]:
    single = _named(_rows(1))[0]
    batch = _rows(batch_rows)
    tensor = {"name": "features", "shape": list(batch.shape), "datatype": "FP32"}
    v2_json = {"inputs": [{**tensor, "data": batch.ravel().tolist()}]}
    raw = batch.astype("<f4").tobytes()
    head = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return {
        "single": Request("/predict", json.dumps({"features": single}).encode(), 1),
        "batch": Request("/predict", json.dumps({"instances": _named(batch)}).encode(), batch_rows),
        "v2_json_batch": Request(
            "/v2/models/baseline/infer", json.dumps(v2_json).encode(), batch_rows
        ),
        "v2_binary_batch": Request(
            "/v2/models/baseline/infer",
            head + raw,
            batch_rows,
            {
                "content-type": "application/octet-stream",
                "inference-header-content-length": str(len(head)),
            },
        ),
    }


class Server:
    """A server subprocess; ready once uvicorn reports that it listens."""

    def __init__(self, command: list[str], cpus: set[int] | None) -> None:
        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        self.proc = subprocess.Popen(
            command,
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
            raise RuntimeError(f"the server did not start:\n{tail}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _run(factory: Callable[[], Coroutine[Any, Any, loadgen.Outcome]]) -> loadgen.Outcome:
    # The client needs less CPU per request on uvloop, as the server does.
    try:
        import uvloop
    except ImportError:
        return asyncio.run(factory())
    return uvloop.run(factory())


@dataclass(frozen=True)
class Scenario:
    name: str
    request: str
    mode: str  # fixed_rate or saturate
    rate: float = 0.0
    duration: float = 10.0
    connections: int = 16


def plan(args: argparse.Namespace) -> list[Scenario]:
    return [
        Scenario("single_20_per_s", "single", "fixed_rate", 20.0, args.duration_low, 4),
        Scenario("single_1000_per_s", "single", "fixed_rate", 1000.0, args.duration, 16),
        Scenario("single_max", "single", "saturate", duration=args.saturate, connections=16),
        Scenario("batch_max", "batch", "saturate", duration=args.saturate, connections=4),
        Scenario(
            "v2_json_batch_max", "v2_json_batch", "saturate", duration=args.saturate, connections=4
        ),
        Scenario(
            "v2_binary_batch_max",
            "v2_binary_batch",
            "saturate",
            duration=args.saturate,
            connections=4,
        ),
    ]


def _load_factory(
    host: str, port: int, request: bytes, s: Scenario
) -> Callable[[], Coroutine[Any, Any, loadgen.Outcome]]:
    def factory() -> Coroutine[Any, Any, loadgen.Outcome]:
        if s.mode == "fixed_rate":
            return loadgen.fixed_rate(host, port, request, s.rate, s.duration, s.connections)
        return loadgen.saturate(host, port, request, s.duration, s.connections)

    return factory


def app_cpu_us(bodies: dict[str, Request], requests_per_kind: int) -> dict[str, float]:
    """CPU time (this thread's) per request of the application alone, called in-process through
    its ASGI interface: no network, no HTTP parsing, and, unlike latency, little affected by
    other work on the machine. Only bodies decoded on the event loop are measured (below
    API_OFFLOAD_BODY_BYTES): single rows and the 1,000-row v2 batches, not /predict's."""
    from volatility.api.app import create_app
    from volatility.api.settings import ApiSettings

    async def measure() -> dict[str, float]:
        app = create_app(ApiSettings())
        inbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})
        lifespan = asyncio.create_task(
            app(
                {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put
            )
        )
        await outbox.get()
        out: dict[str, float] = {}
        for kind in ("single", "v2_json_batch", "v2_binary_batch"):
            r = bodies[kind]
            fields = {"content-type": "application/json", **(r.headers or {})}
            fields["content-length"] = str(len(r.body))
            headers = [(k.encode(), v.encode()) for k, v in fields.items()]
            message = {"type": "http.request", "body": r.body, "more_body": False}

            async def receive(message: dict[str, Any] = message) -> dict[str, Any]:
                return message

            async def send(_message: MutableMapping[str, Any]) -> None:
                return None

            def scope(r: Request = r, headers: list[tuple[bytes, bytes]] = headers) -> Any:
                return {
                    "type": "http",
                    "asgi": {"version": "3.0"},
                    "http_version": "1.1",
                    "method": "POST",
                    "scheme": "http",
                    "path": r.path,
                    "raw_path": r.path.encode(),
                    "query_string": b"",
                    "root_path": "",
                    "headers": headers,
                    "client": ("127.0.0.1", 1),
                    "server": ("127.0.0.1", 80),
                    "state": {},
                }

            n = requests_per_kind if r.rows == 1 else max(requests_per_kind // 20, 10)
            for _ in range(min(n, 500)):
                await app(scope(), receive, send)
            start = time.thread_time()
            for _ in range(n):
                await app(scope(), receive, send)
            out[kind] = round(1e6 * (time.thread_time() - start) / n, 1)
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await lifespan
        return out

    return asyncio.run(measure())


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def run_all(
    commands: dict[str, list[str]],
    cpus: set[int] | None,
    scenarios: list[Scenario],
    bodies: dict[str, Request],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every scenario against every server, one after the other per scenario (the API, then the
    floor), so that each comparison is made under the same load of the machine."""
    host = "127.0.0.1"
    servers: dict[str, tuple[Server, int, dict[str, bytes]]] = {}
    results: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in commands}
    try:
        for name, command in commands.items():
            port = _free_port()
            server = Server([*command, "--port", str(port)], cpus)
            server.wait_ready(timeout=60)
            raw = {
                k: loadgen.build_request(host, port, r.path, r.body, r.headers)
                for k, r in bodies.items()
            }
            servers[name] = (server, port, raw)
            # Warm-up: code paths, allocator, onnxruntime arenas.
            _run(_load_factory(host, port, raw["single"], Scenario("warm", "", "saturate", 0, 2.0)))
            _run(
                _load_factory(host, port, raw["batch"], Scenario("warm", "", "saturate", 0, 1.0, 2))
            )
        for s in scenarios:
            # In slices taking turns, so that a burst of other work on the machine falls on
            # both servers alike rather than on whichever ran at that moment.
            slices = max(1, round(s.duration / SLICE_SECONDS))
            part = dataclasses.replace(s, duration=s.duration / slices)
            outcomes = {name: loadgen.Outcome() for name in servers}
            loads: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(slices):
                for name, (_, port, raw) in servers.items():
                    loads[name].append(_load())
                    outcomes[name].merge(_run(_load_factory(host, port, raw[s.request], part)))
            for name, outcome in outcomes.items():
                load = (min(loads[name]), max(loads[name]))
                results[name][s.name] = _summary(s, outcome, bodies[s.request].rows, load)
    finally:
        for server, _, _ in servers.values():
            server.stop()
    return results


def _summary(
    s: Scenario, outcome: loadgen.Outcome, rows: int, load: tuple[float, float]
) -> dict[str, Any]:
    rps = outcome.completed / outcome.elapsed if outcome.elapsed else 0.0
    result: dict[str, Any] = {
        "mode": s.mode,
        "connections": s.connections,
        "rows_per_request": rows,
        "duration_s": round(outcome.elapsed, 3),
        "requests": outcome.completed,
        "non_200": outcome.completed - outcome.ok,
        "failures": outcome.failures,
        "requests_per_s": round(rps, 1),
        "rows_per_s": round(rps * rows, 1),
        # Fixed rate: from the scheduled send time. Saturation: from the send.
        "latency_ms": loadgen.percentiles_ms(outcome.due),
        "loadavg_1m_min_max": list(load),
    }
    if s.mode == "fixed_rate":
        result["target_per_s"] = s.rate
        result["latency_from_send_ms"] = loadgen.percentiles_ms(outcome.sent)
        result["client_send_lag_ms"] = loadgen.percentiles_ms(outcome.lag)
    return result


def _ratio(ours: float | None, floor: float | None) -> float | None:
    if not ours or not floor:
        return None
    return round(ours / floor, 2)


def compare(api: dict[str, dict[str, Any]], floor: dict[str, dict[str, Any]]) -> None:
    for name, ours in api.items():
        base = floor.get(name)
        if base is None:
            continue
        if ours["mode"] == "fixed_rate":
            ours["floor_latency_ms"] = base["latency_ms"]
            ours["p99_to_floor"] = _ratio(
                ours["latency_ms"].get("p99"), base["latency_ms"].get("p99")
            )
            ours["p50_to_floor"] = _ratio(
                ours["latency_ms"].get("p50"), base["latency_ms"].get("p50")
            )
        else:
            ours["floor_requests_per_s"] = base["requests_per_s"]
            ours["throughput_to_floor"] = _ratio(ours["requests_per_s"], base["requests_per_s"])


def _print(name: str, r: dict[str, Any]) -> None:
    lat = r["latency_ms"]
    line = (
        f"{name:>20}: {r['requests_per_s']:>9.1f} req/s {r['rows_per_s']:>10.1f} rows/s  "
        f"p50 {lat.get('p50')} p99 {lat.get('p99')} p99.9 {lat.get('p99.9')} "
        f"max {lat.get('max')} ms"
    )
    if "p99_to_floor" in r:
        floor = r["floor_latency_ms"]
        line += (
            f"  | floor p50 {floor.get('p50')} p99 {floor.get('p99')} ms, p99 x{r['p99_to_floor']}"
        )
    if "throughput_to_floor" in r:
        line += f"  | floor {r['floor_requests_per_s']:.1f} req/s, x{r['throughput_to_floor']}"
    line += f"  non-200 {r['non_200']} failures {r['failures']}  load {r['loadavg_1m_min_max']}"
    print(line, flush=True)


def targets(api: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    measured = {
        "p99_ms_at_20_per_s": api["single_20_per_s"]["latency_ms"].get("p99"),
        "p99_ms_at_1000_per_s": api["single_1000_per_s"]["latency_ms"].get("p99"),
        "single_requests_per_s": api["single_max"]["requests_per_s"],
        "batch_rows_per_s": max(
            api[k]["rows_per_s"] for k in ("batch_max", "v2_json_batch_max", "v2_binary_batch_max")
        ),
    }
    out: dict[str, dict[str, Any]] = {}
    for key, target in TARGETS.items():
        value = measured[key]
        met = value is not None and (value <= target if key.startswith("p99") else value >= target)
        out[key] = {"target": target, "measured": value, "met": met}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.api_bench", description=__doc__
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds at 1,000 req/s")
    parser.add_argument("--duration-low", type=float, default=60.0, help="seconds at 20 req/s")
    parser.add_argument("--saturate", type=float, default=10.0, help="seconds per saturation run")
    parser.add_argument("--batch-rows", type=int, default=1000, help="rows per batch request")
    parser.add_argument("--out", type=Path, default=Path("bench-results/api.json"))
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor runs")
    args = parser.parse_args(argv)

    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cpus) >= 2
    server_cpus = {cpus[0]} if pin else None
    if pin:
        os.sched_setaffinity(0, set(cpus[1:]))
    bodies = requests(args.batch_rows)
    scenarios = plan(args)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = _load()
    api_command = [sys.executable, "-m", "volatility.api", "--host", "127.0.0.1"]
    floor_command = [sys.executable, "-m", "tests.benchmarks.api_floor", "--host", "127.0.0.1"]
    commands = {"api": api_command}
    if not args.no_floor:
        commands["floor"] = floor_command
    measured = run_all(commands, server_cpus, scenarios, bodies)
    api, floor = measured["api"], measured.get("floor", {})
    if floor:
        compare(api, floor)
    print("API (volatility serve), beside the floor (the same server stack, a fixed answer):")
    for name, result in api.items():
        _print(name, result)
    cpu = app_cpu_us(bodies, 20_000)
    print(f"application CPU per request, in-process (us): {cpu}")
    goal = targets(api)
    for key, t in goal.items():
        verdict = "met" if t["met"] else "NOT met"
        print(f"target {key}: {t['measured']} (target {t['target']}) {verdict}")
    report = {
        "when": started,
        "machine": {
            "cpus": len(cpus),
            "pinned": {"server": sorted(server_cpus or []), "client": cpus[1:] if pin else []},
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_1m_before_after": [load_before, _load()],
        },
        "server": _server_stack(),
        "api": api,
        "floor": floor,
        "app_cpu_us_per_request": cpu,
        "targets": goal,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
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
