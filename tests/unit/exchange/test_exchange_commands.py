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
