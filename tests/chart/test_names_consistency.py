"""The chart speaks the code's language: variant names, metric names and label names are defined
once (names.py, metrics.py, api/metrics.py), and every dashboard query and alert expression uses
only series and labels the services export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.chart.test_chart_render import by_kind, render
from tests.chart.test_chart_render import helm as helm  # the fixture
from volatility.api.metrics import ApiMetrics
from volatility.names import VARIANTS

CHART = Path(__file__).resolve().parents[2] / "charts" / "volatility"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}
# Labels Prometheus adds to every scraped series (target labels of a ServiceMonitor), and the
# histogram bucket bound.
TARGET_LABELS = {"namespace", "pod", "job", "instance", "container", "endpoint", "service"}
RECORDED = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")
SELECTOR = re.compile(r"\b((?:volatility_|up\b)[a-z0-9_]*)\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def exported_series() -> dict[str, set[str]]:
    """Every series name the services export, with the label names it carries."""
    from prometheus_client import REGISTRY

    import volatility.metrics  # noqa: F401 - registers the pipeline's metrics

    api = CollectorRegistry()
    ApiMetrics(api)
    series: dict[str, set[str]] = {}
    for registry in (REGISTRY, api):
        for collector in list(registry._collector_to_names):
            describe = getattr(collector, "describe", None)
            if describe is None:
                continue
            for family in describe():
                own: tuple[str, ...] = getattr(collector, "_labelnames", ())
                labels = own or tuple(getattr(family, "_labelnames", ()))
                for suffix in SUFFIXES.get(family.type, ("",)):
                    extra = {"le"} if suffix == "_bucket" else set()
                    series[family.name + suffix] = set(labels) | extra
    return series


@pytest.fixture(scope="module")
def rules(helm: str) -> list[dict[str, Any]]:
    """Every rule of the PrometheusRule as the chart renders it."""
    docs = render(helm, "--api-versions", "monitoring.coreos.com/v1")
    (rule,) = by_kind(docs, "PrometheusRule").values()
    return [r for g in rule["spec"]["groups"] for r in g["rules"]]


def dashboard_queries() -> list[tuple[str, str]]:
    """(dashboard file, expression) of every panel target."""
    found = []
    for path in sorted((CHART / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text()).get("panels", []):
            found += [(path.name, t["expr"]) for t in panel.get("targets", [])]
    assert found, "no dashboard queries"
    return found


def chart_queries(rules: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard query and rule expression."""
    named = [(r.get("alert") or r["record"], str(r["expr"])) for r in rules]
    return [*dashboard_queries(), *named]


def test_values_schema_variants_are_the_code_variants() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["properties"]["modelVariant"]["enum"] == list(VARIANTS)
    assert schema["definitions"]["variantOrInherit"]["enum"] == ["", *VARIANTS]


def test_dashboards_and_alerts_only_use_exported_metrics(rules: list[dict[str, Any]]) -> None:
    exported = exported_series()
    used: set[str] = set()
    for _, text in chart_queries(rules):
        used |= set(re.findall(r"\bvolatility_[a-z0-9_]+", RECORDED.sub(" ", text)))
    assert used, "no volatility_* series referenced by the chart"
    missing = sorted(used - set(exported))
    assert not missing, f"the chart queries series no service exports: {missing}"


def test_selectors_and_groupings_use_exported_labels(rules: list[dict[str, Any]]) -> None:
    exported = exported_series()
    every_label = set().union(*exported.values()) | TARGET_LABELS | {"le"}
    for where, text in chart_queries(rules):
        plain = RECORDED.sub(" ", text)
        for name, matchers in SELECTOR.findall(plain):
            labels = set(MATCHER.findall(matchers))
            allowed = exported.get(name, set()) | TARGET_LABELS
            assert labels <= allowed, f"{where}: {name} has no label {labels - allowed}"
        for group in GROUPING.findall(text):
            labels = {g.strip() for g in group.split(",") if g.strip()}
            assert labels <= every_label, f"{where}: no series has {labels - every_label}"


def test_recorded_series_are_recorded(rules: list[dict[str, Any]]) -> None:
    recorded = {r["record"] for r in rules if "record" in r}
    used = {m for _, text in chart_queries(rules) for m in RECORDED.findall(text)}
    assert used, "no recorded series is used"
    assert not used - recorded, f"queried but never recorded: {sorted(used - recorded)}"
