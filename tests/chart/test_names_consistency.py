"""The chart speaks the code's language: variant names and metric names are defined once."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from volatility.api.metrics import ApiMetrics
from volatility.names import VARIANTS

CHART = Path(__file__).resolve().parents[2] / "charts" / "volatility"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}


def _exported_series() -> set[str]:
    from prometheus_client import REGISTRY

    import volatility.metrics  # noqa: F401 - registers the pipeline's metrics

    api = CollectorRegistry()
    ApiMetrics(api)
    names: set[str] = set()
    for registry in (REGISTRY, api):
        for family in registry.collect():
            names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    return names


def test_values_schema_variants_are_the_code_variants() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["properties"]["modelVariant"]["enum"] == list(VARIANTS)
    assert schema["definitions"]["variantOrInherit"]["enum"] == ["", *VARIANTS]


def test_dashboards_and_alerts_only_use_exported_metrics() -> None:
    sources = [*(CHART / "dashboards").glob("*.json"), *(CHART / "templates").rglob("*.yaml")]
    used = {m for f in sources for m in re.findall(r"\bvolatility_[a-z0-9_]+", f.read_text())}
    assert used, "no volatility_* series referenced by the chart"
    missing = sorted(used - _exported_series())
    assert not missing, f"the chart queries series no service exports: {missing}"
