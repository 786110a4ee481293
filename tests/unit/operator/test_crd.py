"""The CRD in the chart and the operator's code agree: names, enums, defaults, descriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from volatility.names import VARIANTS
from volatility_operator import resource, spec
from volatility_operator.spec import SpecError, Workload, parse_spec, parse_workloads

CRD = Path(__file__).resolve().parents[3] / "charts" / "volatility" / "crds" / "modelvariants.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(CRD.read_text())
    return doc


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    assert version["name"] == resource.VERSION
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_names(crd: dict[str, Any]) -> None:
    assert crd["metadata"]["name"] == f"{resource.PLURAL}.{resource.GROUP}"
    assert crd["spec"]["group"] == resource.GROUP
    assert crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"]) == (resource.KIND, resource.PLURAL)
    assert names["shortNames"] == [resource.SHORT_NAME]


def test_enums_come_from_the_code(crd: dict[str, Any]) -> None:
    props = _schema(crd)["properties"]
    sp, st = props["spec"]["properties"], props["status"]["properties"]
    for enum in (
        sp["variant"]["enum"],
        st["variant"]["enum"],
        st["target"]["enum"],
        st["previous"]["enum"],
        st["hold"]["properties"]["variant"]["enum"],
        st["history"]["items"]["properties"]["to"]["enum"],
    ):
        assert tuple(enum) == VARIANTS
    assert tuple(sp["workloads"]["items"]["properties"]["role"]["enum"]) == resource.ROLES
    assert tuple(st["phase"]["enum"]) == resource.PHASES
    cond = st["conditions"]["items"]["properties"]["type"]["enum"]
    assert tuple(cond) == resource.CONDITION_TYPES
    assert tuple(st["changeTrigger"]["enum"]) == resource.TRIGGERS
    thresholds = set(sp["autoRollback"]["properties"]) - {
        "enabled",
        "windowSeconds",
        "cooldownSeconds",
        "clearRatio",
    }
    assert thresholds == set(resource.SIGNALS)
    assert st["history"]["maxItems"] == resource.HISTORY_LIMIT


def test_defaults_equal_the_code(crd: dict[str, Any]) -> None:
    sp = _schema(crd)["properties"]["spec"]["properties"]
    auto = sp["autoRollback"]["properties"]
    assert sp["progressDeadlineSeconds"]["default"] == spec.DEFAULT_PROGRESS_DEADLINE_SECONDS
    assert auto["windowSeconds"]["default"] == spec.DEFAULT_WINDOW_SECONDS
    assert auto["cooldownSeconds"]["default"] == spec.DEFAULT_COOLDOWN_SECONDS
    assert auto["clearRatio"]["default"] == spec.DEFAULT_CLEAR_RATIO


def _walk(node: dict[str, Any], path: str) -> list[str]:
    missing = [] if node.get("description") or path.endswith(".metadata") else [path]
    for name, child in (node.get("properties") or {}).items():
        missing += _walk(child, f"{path}.{name}")
    if "items" in node:
        missing += _walk(node["items"], f"{path}[]")
    return missing


def test_every_field_is_described_for_kubectl_explain(crd: dict[str, Any]) -> None:
    assert _walk(_schema(crd), "ModelVariant") == []


def test_printer_columns(crd: dict[str, Any]) -> None:
    (version,) = crd["spec"]["versions"]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Variant"] == ".spec.variant"
    assert columns["Phase"] == ".status.phase"
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert "Age" in columns
    assert version["subresources"] == {"status": {}}


def test_parse_spec_fills_defaults_and_workloads() -> None:
    defaults = (Workload("a", "api"), Workload("c", "consumer"))
    parsed = parse_spec({"variant": "ml"}, defaults)
    assert parsed.workloads == defaults
    assert parsed.progress_deadline_seconds == spec.DEFAULT_PROGRESS_DEADLINE_SECONDS
    assert parsed.auto_rollback is None
    own = parse_spec(
        {
            "variant": "baseline",
            "modelVersion": "v3",
            "workloads": [{"name": "x", "role": "api"}],
            "autoRollback": {"enabled": True, "errorRatio": 0.1},
        },
        defaults,
    )
    assert own.workloads == (Workload("x", "api"),)
    assert own.model_version == "v3"
    assert own.auto_rollback is not None
    assert dict(own.auto_rollback.thresholds) == {"errorRatio": 0.1}
    with pytest.raises(SpecError, match=r"spec\.variant"):
        parse_spec({"variant": "deep"}, defaults)
    with pytest.raises(SpecError, match="no default workloads"):
        parse_spec({"variant": "ml"}, ())


def test_parse_workloads_option() -> None:
    assert parse_workloads("api=r-api, consumer=r-consumer") == (
        Workload("r-api", "api"),
        Workload("r-consumer", "consumer"),
    )
    assert parse_workloads("") == ()
    with pytest.raises(SpecError, match="expected role=deployment-name"):
        parse_workloads("r-api")
    with pytest.raises(SpecError, match="role"):
        parse_workloads("web=r-api")
