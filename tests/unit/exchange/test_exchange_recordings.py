from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from volatility.exchange.capture import capture_line
from volatility.exchange.recordings import (
    count_ticks,
    expand_paths,
    iter_frames,
    iter_records,
    iter_ticks,
)

from .conftest import SMALL_RECORDING


def _manifest(data_dir: Path) -> dict[str, dict[str, int]]:
    with (data_dir / "coinbase" / "MANIFEST.tsv").open(newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return {row["file"]: json.loads(row["ticks"]) for row in rows}


def test_all_recordings_parse_cleanly_and_match_the_manifest(data_dir: Path) -> None:
    manifest = _manifest(data_dir)
    assert len(manifest) == 13  # the 13 recorded sessions in ../shared/data/coinbase
    for name, expected in manifest.items():
        malformed: Counter[str] = Counter()
        counts = Counter(t.product_id for t in iter_ticks(data_dir / "coinbase" / name, malformed))
        assert malformed == Counter(), name
        assert dict(counts) == expected, name


def test_ticks_come_in_file_order_and_directories_expand_sorted(data_dir: Path) -> None:
    files = expand_paths(data_dir / "coinbase")
    assert [f.name for f in files] == sorted(_manifest(data_dir))
    times = [t.event_time for t in iter_ticks(SMALL_RECORDING)]
    assert len(times) == 1790 and times == sorted(times)
    assert count_ticks([SMALL_RECORDING, SMALL_RECORDING]) == {"BTC-USD": 3580}


def test_bad_lines_are_counted_by_reason_and_skipped(tmp_path: Path) -> None:
    good = SMALL_RECORDING.read_text().splitlines()[:3]
    crossed = good[1].replace('"best_bid":"98387.99"', '"best_bid":"98999"')
    assert crossed != good[1]
    lines = [
        good[0],
        "not json at all",
        "",
        '["a list"]',
        '{"channel":"rumours","timestamp":"2026-04-04T21:13:43Z","events":[]}',
        '{"type":"error","message":"nope"}',
        crossed,
        good[2].replace('"timestamp":"2025', '"timestamp":"20x5'),
        '{"received_at":12.5,"frame":{"channel":"ticker"',  # truncated capture line
        capture_line(good[1], 1.5).rstrip("\n"),
        good[2],
    ]
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join(lines) + "\n")
    malformed: Counter[str] = Counter()
    ticks = list(iter_ticks(path, malformed))
    assert [t.price for t in ticks] == [98391.99, 98388.0, pytest.approx(ticks[2].price)]
    assert len(ticks) == 3
    assert malformed == Counter(
        {
            "not_json": 2,
            "not_object": 1,
            "unknown_channel": 1,
            "error_frame": 1,
            "crossed_book": 1,
            "bad_timestamp": 1,
        }
    )


def test_capture_lines_keep_the_frame_and_receive_time(tmp_path: Path) -> None:
    frame = SMALL_RECORDING.read_text().splitlines()[0]
    path = tmp_path / "c.ndjson"
    path.write_text(capture_line(frame, 1775000000.25) + frame + "\n")
    records = list(iter_records(path))
    assert [r.received_at for r in records] == [1775000000.25, None]
    assert records[0].frame == records[1].frame == frame.encode()
    assert json.loads(capture_line(frame, 3.0))["frame"] == json.loads(frame)
    (first, _), (second, _) = iter_frames(path)
    assert first.line_no == 1 and second.line_no == 2
