"""services/Dockerfile, checked by construction (no Docker engine needed).

Every COPY source must exist and survive .dockerignore, every stage a COPY --from names must
exist earlier, every target's CMD must be a real `volatility` subcommand that the CLI parses,
and each target must install the pyproject extra it needs and run unprivileged.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "services" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
TARGETS = {
    # target: (extras installed, models baked in, CMD)
    "ingest": ({"stream"}, False, ["ingest"]),
    "featurizer": ({"stream"}, False, ["featurize"]),
    "consumer": ({"serve", "stream"}, True, ["consume"]),
    "api": ({"serve"}, True, ["serve", "--host", "0.0.0.0", "--port", "8000"]),  # noqa: S104
    "operator": ({"operator"}, False, ["operator"]),
}


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse(text: str) -> list[Stage]:
    """Instructions per stage, with line continuations joined and comments dropped."""
    logical: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    assert not buffer, "the Dockerfile ends inside a line continuation"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arg = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = arg.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=parts[0]))
        elif stages:
            stages[-1].instructions.append((keyword, arg.strip()))
    return stages


def copy_parts(arg: str) -> tuple[dict[str, str], list[str], str]:
    words = shlex.split(arg)
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


def dockerignore_excludes(rel: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = rel.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        regex = re.escape(body.strip("/")).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    parsed = parse(DOCKERFILE.read_text())
    return {s.name: s for s in parsed}


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def lineage(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = [stages[name]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def inherited(stages: dict[str, Stage], name: str, keyword: str) -> str | None:
    for stage in lineage(stages, name):
        found = stage.all(keyword)
        if found:
            return found[-1]
    return None


def test_every_target_exists(stages: dict[str, Stage]) -> None:
    assert set(TARGETS) <= set(stages)


def test_copy_sources_exist_and_are_in_the_build_context(
    stages: dict[str, Stage], ignore_patterns: list[str]
) -> None:
    order = list(stages)
    checked = 0
    for index, stage in enumerate(stages.values()):
        for arg in stage.all("COPY"):
            flags, sources, _ = copy_parts(arg)
            if "from" in flags:
                assert flags["from"] in order[:index], (
                    f"{stage.name}: unknown stage {flags['from']}"
                )
                continue
            for source in sources:
                assert (REPO / source).exists(), f"{stage.name}: COPY {source} does not exist"
                assert not dockerignore_excludes(source, ignore_patterns), (
                    f"{stage.name}: COPY {source} is excluded by .dockerignore"
                )
                checked += 1
    assert checked >= 4


def test_dockerignore_keeps_secrets_and_caches_out(ignore_patterns: list[str]) -> None:
    for path in (".git", ".venv", "tests", "charts", "services/volatility/__pycache__"):
        assert dockerignore_excludes(path, ignore_patterns), path
    assert not dockerignore_excludes("services/volatility/cli.py", ignore_patterns)


def test_cmd_is_a_real_volatility_subcommand(stages: dict[str, Stage]) -> None:
    from volatility.cli import COMMANDS, build_parser

    names = {command.name for command in COMMANDS}
    for target, (_, _, expected) in TARGETS.items():
        entrypoint = inherited(stages, target, "ENTRYPOINT")
        assert entrypoint is not None and json.loads(entrypoint) == ["volatility"], target
        cmd = stages[target].all("CMD")
        assert cmd, f"{target} has no CMD of its own"
        args = json.loads(cmd[-1])
        assert args == expected, target
        assert args[0] in names, f"{target}: `volatility {args[0]}` is not a subcommand"
    parser = build_parser()
    for _, _, args in TARGETS.values():
        parser.parse_args(args)  # argparse exits (and fails the test) on unknown options
    parser.parse_args(["kafka", "init"])  # the chart's topics Job and init containers


def test_each_target_installs_its_extra(stages: dict[str, Stage]) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    known = set(pyproject["project"]["optional-dependencies"])
    for target, (extras, _, _) in TARGETS.items():
        venv_sources = [
            copy_parts(arg)[0]["from"]
            for arg in stages[target].all("COPY")
            if copy_parts(arg)[0].get("from", "").startswith("venv")
        ]
        assert len(venv_sources) == 1, target
        installs = " ".join(
            arg
            for s in lineage(stages, venv_sources[0])
            for arg in s.all("RUN")
            if "pip install" in arg
        )
        found = re.findall(r"\[([a-z,]+)\]", installs)
        assert found, f"{target}: no extra installed"
        installed = set(found[-1].split(","))
        assert installed == extras, f"{target}: installs {installed}, needs {extras}"
        assert installed <= known, f"{target}: unknown extra {installed - known}"


def test_models_are_baked_only_where_scoring_happens(stages: dict[str, Stage]) -> None:
    for target, (_, baked, _) in TARGETS.items():
        copies = [copy_parts(arg) for arg in stages[target].all("COPY")]
        has_models = any("models/artifacts" in sources for _, sources, _ in copies)
        assert has_models == baked, target
        env = " ".join(s for stage in lineage(stages, target) for s in stage.all("ENV"))
        assert ("MODEL_DIR=/app/models/artifacts" in env) == baked, target


def test_runtime_is_slim_unprivileged_and_without_compilers(stages: dict[str, Stage]) -> None:
    for target in TARGETS:
        chain = lineage(stages, target)
        root = chain[-1]
        assert "slim" in root.base or root.base.startswith("${PYTHON_IMAGE"), root.base
        assert inherited(stages, target, "USER") == "10001:10001", target
        runs = " ".join(arg for stage in chain for arg in stage.all("RUN"))
        for tool in ("gcc", "build-essential", "apt-get install", "pip install"):
            assert tool not in runs, f"{target} runtime runs {tool}"
    default_base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert default_base and re.fullmatch(r"python:3\.11-slim(-\w+)?", default_base.group(1))
