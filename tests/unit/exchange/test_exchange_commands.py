from __future__ import annotations

import argparse
import threading
from pathlib import Path

import pytest

from volatility.exchange.commands import (
    add_capture_arguments,
    add_simulate_arguments,
    run_capture,
    run_simulate,
)
from volatility.exchange.recordings import iter_ticks
from volatility.exchange.simulator import replay_source, start_simulator

from .conftest import SMALL_RECORDING


def _parser(add: object) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="volatility")
    add(parser)  # type: ignore[operator]
    return parser


def test_help_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    for add in (add_simulate_arguments, add_capture_arguments):
        with pytest.raises(SystemExit) as done:
            _parser(add).parse_args(["--help"])
        assert done.value.code == 0
    assert "--rotate-minutes" in capsys.readouterr().out
    args = _parser(add_simulate_arguments).parse_args(["--speed", "max", "--port", "0"])
    assert args.speed is None and not args.replay and args.products == ["BTC-USD", "ETH-USD"]
    assert _parser(add_simulate_arguments).parse_args(["--speed", "10"]).speed == 10.0
    with pytest.raises(SystemExit):
        _parser(add_simulate_arguments).parse_args(["--speed", "-1"])
    with pytest.raises(SystemExit):
        _parser(add_simulate_arguments).parse_args(["--replay", "x", "--synthetic"])


def test_simulate_command_serves_and_stops(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser(add_simulate_arguments).parse_args(
        ["--synthetic", "--seed", "2", "--port", "0", "--duration", "0.5", "--quiet"]
    )
    assert run_simulate(args) == 0
    assert "simulator listening on ws://127.0.0.1:" in capsys.readouterr().err


def test_capture_command_records_a_replay(tmp_path: Path) -> None:
    expected = list(iter_ticks(SMALL_RECORDING))
    with start_simulator(replay_source(SMALL_RECORDING), speed=None, timestamps="keep") as sim:
        args = _parser(add_capture_arguments).parse_args(
            ["--url", sim.url, "--products", "BTC-USD", "--out", str(tmp_path), "--quiet"]
        )
        stop = threading.Event()
        result: list[int] = []
        worker = threading.Thread(target=lambda: result.append(run_capture(args, stop)))
        worker.start()
        assert sim.wait_for(lambda s: s.ticks_sent == len(expected), 20.0)
        stop.set()
        worker.join(timeout=10.0)
    assert result == [0]
    files = list(tmp_path.glob("*.ndjson"))
    assert len(files) == 1 and not list(tmp_path.glob("*.part"))
    captured = [(t.event_time, t.price, t.best_bid, t.best_ask) for t in iter_ticks(files)]
    # Frames still in flight when stop came are not captured; what was captured is exact.
    assert captured
    assert (
        captured
        == [(t.event_time, t.price, t.best_bid, t.best_ask) for t in expected][: len(captured)]
    )


def test_simulate_stops_on_sigterm_whatever_a_client_sent() -> None:
    """A client asking for a product and channels the simulator never serves, then sending
    garbage, leaves it responsive: SIGTERM ends the process promptly with exit code 0."""
    import json
    import signal
    import socket
    import subprocess
    import sys
    import time

    import websocket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    volatility = Path(sys.executable).with_name("volatility")
    proc = subprocess.Popen(
        [str(volatility), "simulate", "--synthetic", "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ws = websocket.create_connection(f"ws://127.0.0.1:{port}", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "the simulator did not start"
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)  # polling a deadline-bounded start
        for request in (
            {"type": "subscribe", "product_ids": ["NOPE-USD"], "channel": "ticker"},
            {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
            {"type": "subscribe", "product_ids": "BTC-USD", "channels": "ticker"},
        ):
            ws.send(json.dumps(request))
        ws.send("[" * 100_000)
        ws.send(json.dumps({"type": "subscribe", "product_ids": [], "channel": "heartbeats"}))
        answers = [ws.recv() for _ in range(8)]
        assert any('"heartbeats"' in str(a) for a in answers)  # still answering
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        elapsed = time.monotonic() - started
        assert elapsed < 5, f"took {elapsed:.1f} s to stop"
        ws.close(timeout=1.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
