"""The `volatility` command: every subcommand answers --help, and help imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from volatility.cli import COMMANDS, build_parser

HEAVY = (
    "onnxruntime", "confluent_kafka", "sklearn", "skl2onnx", "fastapi", "websockets", "rich",
    "numpy", "pydantic",
)  # fmt: skip


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_every_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([name, "--help"])
    assert exit_.value.code == 0
    assert f"volatility {name}" in capsys.readouterr().out


def test_building_the_command_line_imports_no_heavy_dependency() -> None:
    code = (
        "import sys; from volatility.cli import build_parser; build_parser(); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
