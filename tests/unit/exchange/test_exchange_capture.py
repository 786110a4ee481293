from __future__ import annotations

from pathlib import Path

from volatility.exchange.capture import CaptureWriter
from volatility.exchange.recordings import iter_records, iter_ticks
from volatility.exchange.simulator import replay_source, start_simulator
from volatility.ticks import Tick

from .conftest import SMALL_RECORDING, WAIT_S, client_config, running_client


def _market(tick: Tick) -> tuple[str, float, float, float, float, float | None]:
    return (
        tick.product_id,
        tick.event_time,
        tick.price,
        tick.best_bid,
        tick.best_ask,
        tick.volume_24h,
    )


def test_capture_round_trip_gives_back_the_recorded_ticks(tmp_path: Path) -> None:
    expected = [_market(t) for t in iter_ticks(SMALL_RECORDING)]
    writer = CaptureWriter(tmp_path, rotate_bytes=100_000, rotate_seconds=None)
    source = replay_source(SMALL_RECORDING)
    config = {"products": ("BTC-USD",)}
    with (
        start_simulator(source, speed=None, timestamps="keep") as sim,
        running_client(client_config(sim.url, **config), on_raw=writer.write) as (client, _frames),
    ):
        assert client.wait_for(lambda s: s.ticks == len(expected), WAIT_S)
    writer.close()
    files = sorted(tmp_path.glob("*.ndjson"))
    assert files == sorted(writer.files) and len(files) >= 3  # rotated by size
    assert not list(tmp_path.glob("*.part"))
    assert all(f.name.startswith("capture-") and f.name[8:24].endswith("Z") for f in files)
    assert [_market(t) for t in iter_ticks(files)] == expected
    records = list(iter_records(files))
    assert len(records) == writer.lines
    assert all(r.received_at is not None for r in records)


def test_rotation_by_time_and_unique_names(tmp_path: Path) -> None:
    frame = SMALL_RECORDING.read_text().splitlines()[0]
    writer = CaptureWriter(tmp_path, rotate_bytes=None, rotate_seconds=1e-9, flush_interval=0.0)
    for i in range(3):
        writer.write(frame, 1775000000.0 + i * 0.1)  # all in the same second
    assert writer.current is not None and writer.current.with_suffix(".ndjson.part").exists()
    writer.close()
    assert [f.name for f in writer.files] == [
        "capture-20260331T233320Z-0000.ndjson",
        "capture-20260331T233320Z-0001.ndjson",
        "capture-20260331T233320Z-0002.ndjson",
    ]
    assert len(list(iter_ticks(tmp_path))) == 3


def test_lines_are_flushed_before_close(tmp_path: Path) -> None:
    frame = SMALL_RECORDING.read_text().splitlines()[0]
    writer = CaptureWriter(tmp_path, flush_interval=0.0)
    writer.write(frame, 1775000000.0)
    part = next(tmp_path.glob("*.part"))
    assert part.read_text().count("\n") == 1
    writer.close()
    assert not part.exists()
