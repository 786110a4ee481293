"""The ``simulate`` and ``capture`` commands: argument definitions and their run functions."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from volatility.names import COINBASE_WS_URL, DEFAULT_PRODUCTS
from volatility.pacing import parse_speed

PROGRESS_INTERVAL_S = 5.0


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def _wait(
    stop: threading.Event, duration: float | None, progress: Callable[[], str], quiet: bool
) -> None:
    """Until stop or duration, printing a progress line every few seconds."""
    deadline = None if not duration else time.monotonic() + duration
    while not stop.is_set():
        timeout = PROGRESS_INTERVAL_S
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                break
        if stop.wait(timeout):
            break
        if not quiet:
            _say(progress())


# -- simulate ----------------------------------------------------------------------------------
def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--replay", nargs="+", metavar="FILE", help="NDJSON recordings (files or directories)"
    )
    source.add_argument(
        "--synthetic", action="store_true", help="seeded synthetic market (the default)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic market")
    parser.add_argument(
        "--speed", type=parse_speed, default=1.0, help="event-time speed-up factor, or 'max'"
    )
    parser.add_argument("--loop", action="store_true", help="replay the recordings endlessly")
    parser.add_argument(
        "--timestamps",
        choices=("now", "shift", "keep"),
        default="now",
        help="frame timestamps: wall clock at send, shifted to start now, or as recorded",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--products", nargs="+", default=list(DEFAULT_PRODUCTS))
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: never)"
    )
    parser.add_argument(
        "--preroll",
        type=float,
        default=0.0,
        help="seconds of recent history a new connection receives at once (paced speeds)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run_simulate(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Serve until SIGINT/SIGTERM, ``--duration`` or ``stop`` (for embedding)."""
    from volatility.exchange.simulator import replay_source, start_simulator, synthetic_source

    if args.replay:
        source = replay_source(args.replay, products=args.products, loop=args.loop)
    else:
        start = time.time() - args.preroll if args.preroll else None
        source = synthetic_source(
            args.seed, args.products, **({"start_time": start} if start else {})
        )
    stop = stop or threading.Event()
    _stop_on_signals(stop)
    handle = start_simulator(
        source,
        host=args.host,
        port=args.port,
        speed=args.speed,
        timestamps=args.timestamps,
        preroll=args.preroll,
    )
    speed = "max" if args.speed is None else f"{args.speed:g}x"
    _say(f"simulator listening on {handle.url} ({source.name}, {speed})")

    def progress() -> str:
        s = handle.stats()
        return (
            f"connections {s.connections_open} open / {s.connections_total} total, "
            f"frames {s.frames_sent}, ticks {s.ticks_sent}"
        )

    try:
        _wait(stop, args.duration, progress, args.quiet)
    finally:
        handle.stop()
    return 0


# -- capture -----------------------------------------------------------------------------------
def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=COINBASE_WS_URL, help="WebSocket feed URL")
    parser.add_argument("--products", nargs="+", default=list(DEFAULT_PRODUCTS))
    parser.add_argument("--channels", nargs="+", default=["ticker", "heartbeats"])
    parser.add_argument("--out", required=True, help="directory for the NDJSON files")
    parser.add_argument("--prefix", default="capture", help="file name prefix")
    parser.add_argument("--rotate-mb", type=float, default=64.0, help="start a new file past this")
    parser.add_argument(
        "--rotate-minutes", type=float, default=60.0, help="start a new file after this long"
    )
    parser.add_argument(
        "--stale-after", type=float, default=10.0, help="reconnect after this long without frames"
    )
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: never)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run_capture(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Capture until SIGINT/SIGTERM, ``--duration`` or ``stop`` (for embedding)."""
    from volatility.exchange.capture import CaptureWriter
    from volatility.exchange.client import ClientConfig, ExchangeClient

    writer = CaptureWriter(
        args.out,
        prefix=args.prefix,
        rotate_bytes=int(args.rotate_mb * 1024 * 1024) if args.rotate_mb > 0 else None,
        rotate_seconds=args.rotate_minutes * 60.0 if args.rotate_minutes > 0 else None,
    )
    config = ClientConfig(
        url=args.url,
        products=tuple(args.products),
        channels=tuple(args.channels),
        stale_after=args.stale_after,
    )
    client = ExchangeClient(config, on_raw=writer.write)
    stop = stop or threading.Event()
    _stop_on_signals(stop)
    reader = threading.Thread(target=client.run, args=(stop, lambda _frame: None), daemon=True)
    reader.start()

    def progress() -> str:
        s = client.stats()
        bad = sum(s.malformed.values())
        return (
            f"frames {s.frames}, ticks {s.ticks}, lines {writer.lines}, "
            f"reconnects {s.reconnects}, gaps {s.sequence_gaps}, malformed {bad}, "
            f"file {writer.current}"
        )

    try:
        _wait(stop, args.duration, progress, args.quiet)
    finally:
        stop.set()
        reader.join()
        writer.close()  # the writer is only touched by the reader thread, now finished
    _say(f"captured {writer.lines} frames into {len(writer.files)} files")
    return 0
