"""The chart's Grafana dashboards are the output of tools/dashboards.py (grafana-foundation-sdk),
committed as generated, and shipped as one ConfigMap each for the Grafana sidecar. That every
query names exported series and labels is checked in test_names_consistency.py."""

from __future__ import annotations

import json
from pathlib import Path

from tests.chart.test_chart_render import CHART, render
from tests.chart.test_chart_render import helm as helm  # the fixture
from tools import dashboards

EXPECTED = {
    "volatility-pipeline.json": {"Ticks per second", "Tick to prediction", "Spike ratio"},
    "volatility-api-slo.json": {"Error ratio by window", "Slow ratio by window", "Scoring latency"},
    "volatility-model-quality.json": {
        "Live PR-AUC per variant",
        "Active minus shadow PR-AUC",
        "Feature drift (PSI)",
    },
    "volatility-kafka.json": {"Consumer lag (seconds of input)", "Consumer lag (messages)"},
}


def test_committed_dashboards_are_the_generator_output() -> None:
    generated = dashboards.render()
    committed = {p.name: p.read_text() for p in (CHART / "dashboards").glob("*.json")}
    assert set(committed) == set(generated), "run: python -m tools.dashboards"
    for name, text in generated.items():
        assert committed[name] == text, f"{name} is out of date: run python -m tools.dashboards"
    assert dashboards.main(["--check", "--out", str(CHART / "dashboards")]) == 0


def test_check_mode_notices_a_stale_file(tmp_path: Path) -> None:
    assert dashboards.main(["--out", str(tmp_path)]) == 0
    assert dashboards.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "volatility-kafka.json").write_text("{}\n")
    assert dashboards.main(["--check", "--out", str(tmp_path)]) == 1
    (tmp_path / "volatility-kafka.json").unlink()
    (tmp_path / "old.json").write_text("{}\n")
    assert dashboards.main(["--check", "--out", str(tmp_path)]) == 1


def test_each_dashboard_has_its_panels_and_asks_for_datasource_and_namespace() -> None:
    uids = set()
    for name, titles in EXPECTED.items():
        doc = json.loads((CHART / "dashboards" / name).read_text())
        uids.add(doc["uid"])
        panels = [p for p in doc["panels"] if p["type"] != "row"]
        assert titles <= {p["title"] for p in panels}, name
        assert {v["name"] for v in doc["templating"]["list"]} == {"datasource", "namespace"}
        for panel in panels:
            assert panel["datasource"]["uid"] == "${datasource}", (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                assert 'namespace="$namespace"' in target["expr"], (name, target["expr"])
    assert len(uids) == len(EXPECTED)


def test_each_dashboard_ships_as_a_sidecar_config_map(helm: str) -> None:
    docs = render(helm, "--set", "monitoring.dashboards.annotations.grafana_folder=Volatility")
    shipped = {
        key: (doc, value)
        for doc in docs
        if doc["kind"] == "ConfigMap" and "grafana_dashboard" in doc["metadata"]["labels"]
        for key, value in doc["data"].items()
    }
    assert set(shipped) == set(EXPECTED)
    for name, (doc, payload) in shipped.items():
        assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert doc["metadata"]["annotations"]["grafana_folder"] == "Volatility"
        assert json.loads(payload) == json.loads((CHART / "dashboards" / name).read_text())
    off = render(helm, "--set", "monitoring.dashboards.enabled=false")
    assert not [d for d in off if "grafana_dashboard" in d["metadata"].get("labels", {})]
