"""What the tiers that scrape the real services share (the loopback scrape tier and the
Prometheus Operator on the real node): paced API traffic, and the checks that every dashboard
query and every rule expression runs, holding data or empty where a healthy pipeline says so."""

from __future__ import annotations

import json
import math
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tests.chart.test_names_consistency import dashboard_queries

# Prometheus' HTTP API answer to an instant query: its `data.result`.
Query = Callable[[str], list[dict[str, Any]]]

# Panel queries that are valid and must be empty on a healthy pipeline fed a clean recording:
# no service exports the series until the first event of its kind.
EMPTY_DASHBOARD_QUERIES = {
    "volatility_deadletters_total": "nothing is set aside",
    "volatility_malformed_total": "nothing is malformed",
    "volatility_disconnects_total": "the exchange connection never drops",
    "volatility_delivery_errors_total": "the broker acknowledges every message",
}


class ApiTraffic:
    """Scoring requests at about ``rate``/s: valid single rows, and every tenth one malformed
    (answered 422), so the request series carry both kinds of status."""

    def __init__(self, url: str, feature_names: list[str], rate: float = 10.0) -> None:
        self.url = url
        self.body = json.dumps({"rows": [dict.fromkeys(feature_names, 1.0)]}).encode()
        self.bad = json.dumps({"rows": [{"nope": 1.0}]}).encode()
        self.period = 1.0 / rate
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-traffic", daemon=True)
        self._thread.start()

    def _post(self, body: bytes) -> int:
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}/predict", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except OSError:
            return 0

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(self.period):  # the traffic's own pacing
            self.statuses.append(self._post(self.bad if i % 10 == 9 else self.body))
            i += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(15)


def assert_dashboard_queries(
    query: Query, namespace: str, expected_empty: Callable[[str], bool], why: Callable[[], str]
) -> None:
    """Every panel query of the committed dashboards runs; those ``expected_empty`` names are
    empty, every other one holds data that is not only NaN."""
    empty: set[str] = set()
    nan: list[str] = []
    report = []
    for board, expr in dashboard_queries():
        result = query(expr.replace("$namespace", namespace))
        report.append(f"{board}: {len(result)} series | {expr}")
        if not result:
            empty.add(expr)
        elif all(math.isnan(float(s["value"][1])) for s in result):
            nan.append(expr)
    print("\n" + "\n".join(report))
    expected = {e for _, e in dashboard_queries() if expected_empty(e)}
    assert empty == expected, (
        f"empty but should hold data: {sorted(empty - expected)}\n"
        f"hold data but should be empty: {sorted(expected - empty)}\n{why()}"
    )
    assert not nan, f"only NaN: {nan}"


def assert_rule_outcomes(
    query: Query,
    rules: Iterable[Mapping[str, Any]],
    outcomes: Mapping[str, tuple[bool | None, str]],
    record_empty: Callable[[str], bool] = lambda expr: False,
) -> None:
    """Every rule expression runs. A recording rule holds data unless ``record_empty`` says
    otherwise; an alert's expression holds what ``outcomes`` states (True: data, False: empty,
    None: left to the data), and every alert has a stated outcome."""
    rules = list(rules)
    alerts = {r["alert"] for r in rules if "alert" in r}
    assert alerts == set(outcomes), "an alert without a stated healthy outcome"
    report = []
    for rule in rules:
        result = query(rule["expr"])
        name = rule.get("alert") or rule["record"]
        report.append(f"{name}: {len(result)} series")
        if "record" in rule:
            holds = not record_empty(rule["expr"])
            assert bool(result) == holds, f"recording rule {name} holds {result}: {rule['expr']}"
            continue
        expected, why = outcomes[name]
        if expected is not None:
            assert bool(result) == expected, f"{name} holds {result} ({why}): {rule['expr']}"
    print("\n" + "\n".join(report))
