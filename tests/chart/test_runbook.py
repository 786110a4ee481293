"""docs/runbook.md is real for this project: every `volatility`, `kubectl` and `helm` command in
its code blocks is checked against the CLI's parser, the real kubectl and helm binaries' own help,
the chart's values and the manifests the chart renders; every alert links to a section of it."""

from __future__ import annotations

import functools
import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.chart.test_chart_render import CHART, REPO, by_kind
from tests.chart.test_chart_render import helm as helm  # the fixture
from volatility.cli import build_parser

RUNBOOK = REPO / "docs" / "runbook.md"
RELEASE = NAMESPACE = "volatility"  # as `make deploy` installs it
KUBECTL_GLOBALS_WITH_VALUE = {"-n", "--namespace", "--context", "--kubeconfig"}
KINDS = {
    "deploy": "Deployment",
    "deployment": "Deployment",
    "statefulset": "StatefulSet",
    "sts": "StatefulSet",
    "svc": "Service",
    "service": "Service",
    "job": "Job",
    "mv": "ModelVariant",
    "modelvariant": "ModelVariant",
    "cm": "ConfigMap",
    "configmap": "ConfigMap",
    "prometheusrule": "PrometheusRule",
    "servicemonitor": "ServiceMonitor",
}
UNNAMED_TYPES = {"pods", "pod", "events", "hpa", "networkpolicy", "mv", "deploy", "svc"}


@dataclass
class Command:
    argv: list[str]
    heredoc: str | None
    line: str


def _blocks(text: str) -> list[list[str]]:
    return [b.splitlines() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def runbook_commands() -> list[Command]:
    """Every volatility/kubectl/helm command of the runbook's bash blocks, with its heredoc."""
    found: list[Command] = []
    for lines in _blocks(RUNBOOK.read_text()):
        i = 0
        while i < len(lines):
            line = lines[i]
            while line.endswith("\\"):
                i += 1
                line = line[:-1] + " " + lines[i].strip()
            i += 1
            heredoc = None
            marker = re.search(r"<<'(\w+)'", line)
            if marker:
                body = []
                while lines[i] != marker[1]:
                    body.append(lines[i])
                    i += 1
                i += 1
                heredoc = "\n".join(body)
                line = line[: marker.start()]
            tokens = shlex.split(line, comments=True)
            segment: list[str] = []
            for word in [*tokens, "|"]:
                if word != "|":
                    segment.append(word)
                    continue
                if segment and segment[0] in ("volatility", "kubectl", "helm"):
                    found.append(Command(segment, heredoc, line.strip()))
                segment = []
    return found


COMMANDS = runbook_commands()


def _ids(tool: str) -> list[Command]:
    return [c for c in COMMANDS if c.argv[0] == tool]


# --- the chart as the runbook's commands see it -----------------------------------------------


@functools.cache
def rendered(helm: str, *extra: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [
            helm,
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--api-versions",
            "monitoring.coreos.com/v1",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@functools.cache
def tool_help(binary: str, *words: str) -> str:
    # `kubectl options` is itself the help of the global flags.
    argv = [binary, *words] if words == ("options",) else [binary, *words, "--help"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"{binary} {' '.join(words)}: {proc.stderr}"
    assert proc.stdout.strip(), f"{binary} {' '.join(words)}: no help"
    return proc.stdout


def _has_flag(help_text: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?=[=,\s\[:])", help_text) is not None


def _crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load((CHART / "crds" / "modelvariants.yaml").read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _conforms(value: Any, schema: dict[str, Any], where: str) -> None:
    """Structural check of a value against the CRD's OpenAPI schema: known fields, enums, types."""
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(value, dict), where
        props: dict[str, Any] = schema.get("properties") or {}
        for key, sub in value.items() if props else ():  # no properties: free-form
            assert key in props, f"{where}.{key}: no such field"
            _conforms(sub, props[key], f"{where}.{key}")
    elif kind == "integer":
        assert isinstance(value, int), f"{where}: {value!r} is not an integer"
    elif kind == "number":
        assert isinstance(value, int | float), f"{where}: {value!r} is not a number"
    elif kind == "boolean":
        assert isinstance(value, bool), where
    elif kind == "string":
        assert isinstance(value, str), where
    for name in schema.get("required", []):
        assert isinstance(value, dict) and name in value, f"{where}: {name} is required"


# --- the tests --------------------------------------------------------------------------------


def test_the_runbook_names_commands_of_each_tool() -> None:
    tools = {c.argv[0] for c in COMMANDS}
    assert tools == {"volatility", "kubectl", "helm"}, tools
    assert len(COMMANDS) > 40


@pytest.mark.parametrize("cmd", _ids("volatility"), ids=lambda c: c.line)
def test_volatility_commands_parse(cmd: Command) -> None:
    try:
        build_parser().parse_args(cmd.argv[1:])
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"`{cmd.line}` is not a valid volatility command (exit {exc.code})")


@pytest.mark.parametrize("cmd", _ids("kubectl"), ids=lambda c: c.line)
def test_kubectl_commands_use_real_flags_and_chart_resources(helm: str, cmd: Command) -> None:
    kubectl = str(Path(helm).with_name("kubectl"))
    args, inner = cmd.argv[1:], None
    if "--" in args:
        args, inner = args[: args.index("--")], args[args.index("--") + 1 :]
    words: list[str] = []
    flags: list[tuple[str, str | None]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and arg != "-":
            name, _, value = arg.partition("=")
            takes_value = not value and (
                name in KUBECTL_GLOBALS_WITH_VALUE
                or name in {"-l", "-o", "-f", "-p", "--type", "--since", "--replicas"}
                or name in {"--for", "--timeout", "--sort-by", "--bootstrap-server"}
            )
            if takes_value:
                value = args[i + 1]
                i += 1
            flags.append((name, value or None))
        else:
            words.append(arg)
        i += 1
    verb = words[0]
    sub = [words[1]] if verb in {"rollout", "top"} else []
    targets = words[1 + len(sub) :]
    help_text = tool_help(kubectl, verb, *sub) + tool_help(kubectl, "options")
    for name, _ in flags:
        assert _has_flag(help_text, name), f"`{cmd.line}`: kubectl {verb} has no {name}"
    values = dict(flags)
    namespace = values.get("-n") or values.get("--namespace")
    assert namespace in (None, NAMESPACE), cmd.line
    docs = rendered(helm)
    if "-f" in values and values["-f"] != "-":
        assert (REPO / str(values["-f"])).exists(), f"`{cmd.line}`: no {values['-f']}"
    if values.get("-f") == "-":
        assert cmd.heredoc, cmd.line
        manifest = yaml.safe_load(cmd.heredoc)
        assert manifest["kind"] == "ModelVariant", cmd.line
        assert manifest["metadata"]["name"] in by_kind(docs, "ModelVariant"), cmd.line
        assert manifest["metadata"]["namespace"] == NAMESPACE, cmd.line
        _conforms(manifest, _crd_schema(), "ModelVariant")
    if "-l" in values:
        key, _, want = str(values["-l"]).partition("=")
        labelled = [d for d in docs if d["metadata"].get("labels", {}).get(key) == want]
        assert labelled, f"`{cmd.line}`: nothing in the chart is labelled {values['-l']}"
    if verb == "patch":
        assert values.get("--type") == "merge", cmd.line
        _conforms(json.loads(str(values["-p"])), _crd_schema(), "patch")
    named: list[tuple[str, str]] = []
    if targets and "/" in targets[0]:
        kind, _, name = targets[0].partition("/")
        named.append((kind, name))
    elif len(targets) >= 2 and verb in {"get", "describe", "patch"}:
        named.append((targets[0], targets[1]))
    elif targets and verb in {"get", "describe"}:
        assert targets[0] in UNNAMED_TYPES, f"`{cmd.line}`: unknown resource type"
    for kind, name in named:
        assert kind in KINDS, f"`{cmd.line}`: unknown resource type {kind}"
        assert name in by_kind(docs, KINDS[kind]), f"`{cmd.line}`: the chart has no {kind}/{name}"
    if inner and inner[0] == "volatility":
        build_parser().parse_args(inner[1:])


def _set_path_exists(values: Any, key: str) -> bool:
    parts = [p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.", key)]
    node = values
    for part in parts:
        if not isinstance(node, dict):
            return False
        if not node:
            return True  # a free-form map (labels, annotations): any key
        if part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("cmd", _ids("helm"), ids=lambda c: c.line)
def test_helm_commands_use_real_flags_values_and_release(helm: str, cmd: Command) -> None:
    verb = cmd.argv[1]
    help_text = tool_help(helm, verb)
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    positional: list[str] = []
    sets: list[tuple[str, str]] = []
    args = cmd.argv[2:]
    i = 0
    while i < len(args):
        token = args[i]
        if token.startswith("-"):
            name, _, value = token.partition("=")
            assert _has_flag(help_text, name), f"`{cmd.line}`: helm {verb} has no {name}"
            if name in {"--set", "--set-string", "--namespace", "-n", "--timeout"} and not value:
                value = args[i + 1]
                i += 1
            if name in {"--set", "--set-string"}:
                sets.append((name, value))
            if name in {"--namespace", "-n"}:
                assert value == NAMESPACE, cmd.line
        else:
            positional.append(token)
        i += 1
    assert positional[0] == RELEASE, cmd.line
    if verb in {"upgrade", "install"}:
        assert (REPO / positional[1]).resolve() == CHART, cmd.line
        extra: list[str] = []
        for name, assignment in sets:
            key = assignment.split("=", 1)[0]
            assert _set_path_exists(chart_values, key), f"`{cmd.line}`: no value {key}"
            extra += [name, assignment]
        rendered(helm, *extra)  # the chart accepts them (values schema) and renders


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_alert_links_to_its_runbook_section(helm: str) -> None:
    text = RUNBOOK.read_text()
    anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    (rule,) = by_kind(rendered(helm), "PrometheusRule").values()
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == "docs/runbook.md", url
        assert anchor in anchors, f"{alert['alert']}: the runbook has no section #{anchor}"
    for link in re.findall(r"\]\(#([\w-]+)\)", text):
        assert link in anchors, f"the runbook links to a missing section #{link}"


def test_runbook_promql_names_exported_or_recorded_series(helm: str) -> None:
    from tests.chart.test_names_consistency import RECORDED, exported_series

    section = RUNBOOK.read_text().split("## Key PromQL queries", 1)[1]
    queries = re.findall(r"^\|[^|]+\| `(.+)` \|$", section, flags=re.M)
    assert len(queries) >= 10
    exported = exported_series()
    (rule,) = by_kind(rendered(helm), "PrometheusRule").values()
    recorded = {r["record"] for g in rule["spec"]["groups"] for r in g["rules"] if "record" in r}
    for query in queries:
        names = set(re.findall(r"\bvolatility_[a-z0-9_]+", RECORDED.sub(" ", query)))
        rules = set(RECORDED.findall(query))
        assert names or rules, query
        assert names <= set(exported), f"{query}: not exported: {names - set(exported)}"
        assert rules <= recorded, f"{query}: not recorded: {rules - recorded}"
