"""The chart's PrometheusRule, checked and unit-tested by promtool (Debian's prometheus package,
provisioned by tests/infra/provision-prometheus.sh) as helm renders it.

alert_rules_test.yaml holds the cases; every alert must fire in one and stay silent in another.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.chart.test_chart_render import by_kind, render
from tests.chart.test_chart_render import helm as helm  # the fixture
from tests.infra import prometheus

CASES = Path(__file__).with_name("alert_rules_test.yaml")


@pytest.fixture(scope="module")
def promtool() -> Path:
    return prometheus.provision() / "promtool"


@pytest.fixture(scope="module")
def rule_file(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Release "vol" in namespace "volatility": the names the cases use.
    docs = render(helm, "--api-versions", "monitoring.coreos.com/v1")
    (rule,) = by_kind(docs, "PrometheusRule").values()
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def _alerts(rule_file: Path) -> list[dict[str, Any]]:
    groups = yaml.safe_load(rule_file.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def _promtool(promtool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_accepts_the_rules(promtool: Path, rule_file: Path) -> None:
    proc = _promtool(promtool, "check", "rules", str(rule_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_a_severity_and_a_runbook_link(rule_file: Path) -> None:
    for alert in _alerts(rule_file):
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        assert alert["annotations"]["runbook_url"] == (
            f"docs/runbook.md#{alert['alert'].lower()}"
        ), alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]


def test_every_alert_is_tested_firing_and_silent(rule_file: Path) -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load(CASES.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
    names = {a["alert"] for a in _alerts(rule_file)}
    assert names - firing == set(), f"never shown firing: {sorted(names - firing)}"
    assert names - silent == set(), f"never shown silent: {sorted(names - silent)}"
    assert (firing | silent) - names == set(), "cases of alerts the chart no longer has"


def test_promtool_unit_tests_pass(promtool: Path, rule_file: Path) -> None:
    cases = yaml.safe_load(CASES.read_text())
    cases["rule_files"] = [str(rule_file)]
    test_file = rule_file.with_name("alert_rules_test.yaml")
    test_file.write_text(yaml.safe_dump(cases, sort_keys=False))
    proc = _promtool(promtool, "test", "rules", str(test_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_thresholds_come_from_values(helm: str) -> None:
    docs = render(
        helm,
        "--api-versions",
        "monitoring.coreos.com/v1",
        "--set",
        "monitoring.prometheusRule.consumerLagSeconds=90",
        "--set-json",  # --set would pass 0.4 as a string
        "monitoring.prometheusRule.driftPsi=0.4",
        "--set",
        "monitoring.prometheusRule.runbookUrl=https://runbooks.example/volatility.md",
    )
    (rule,) = by_kind(docs, "PrometheusRule").values()
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert "> 90" in alerts["VolatilityConsumerLagHigh"]["expr"]
    assert "clamp_min(" in alerts["VolatilityFeatureDrift"]["expr"]
    assert alerts["VolatilityFeatureDrift"]["expr"].count(", 0.4)") == 1
    assert "* 0 + 0.4" in alerts["VolatilityFeatureDrift"]["expr"]
    assert alerts["VolatilityFeedStale"]["annotations"]["runbook_url"] == (
        "https://runbooks.example/volatility.md#volatilityfeedstale"
    )


def test_promtool_parses_every_dashboard_query(promtool: Path, tmp_path: Path) -> None:
    """Prometheus' own parser on every panel query (Grafana's $namespace filled in)."""
    from tests.chart.test_names_consistency import dashboard_queries

    queries = dashboard_queries()
    rules = [
        {"record": f"dashboard_query_{i}", "expr": expr.replace("$namespace", "volatility")}
        for i, (_, expr) in enumerate(queries)
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = _promtool(promtool, "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout
