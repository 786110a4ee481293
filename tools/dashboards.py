"""The chart's Grafana dashboards, written as code with grafana-foundation-sdk (typed builders of
Grafana's own schema, so every dashboard is valid by construction).

    python -m tools.dashboards [--out charts/volatility/dashboards] [--check]

writes one JSON file per dashboard; the chart ships each as a ConfigMap for the Grafana sidecar.
``--check`` writes nothing and fails when the committed files differ from this code. Metric and
label names come from volatility.names, the one place that defines them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m
from grafana_foundation_sdk.models import prometheus as prom_m

from volatility.names import (
    GROUP_CONSUMER,
    LABEL_FEATURE,
    LABEL_PRODUCT,
    LABEL_REASON,
    LABEL_ROLE,
    LABEL_SERVICE,
    LABEL_TOPIC,
    LABEL_VARIANT,
    METRIC_NAMESPACE,
)

OUT = Path(__file__).resolve().parents[1] / "charts" / "volatility" / "dashboards"
DATASOURCE = dash_m.DataSourceRef(type_val="prometheus", uid="${datasource}")
NS = 'namespace="$namespace"'
WIDTH = 24  # Grafana's grid


def m(name: str) -> str:
    """A metric name of the project (``volatility_<name>``)."""
    return f"{METRIC_NAMESPACE}_{name}"


def q(expr: str, legend: str = "") -> prom_b.Dataquery:
    query = prom_b.Dataquery().expr(expr).datasource(DATASOURCE)
    return query.legend_format(legend) if legend else query


def legend(*labels: str) -> str:
    return " ".join("{{" + label + "}}" for label in labels)


def series(
    title: str, description: str, unit: str, *queries: prom_b.Dataquery, span: int = 12
) -> ts_b.Panel:
    panel = (
        ts_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(8)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common_m.LegendDisplayMode.LIST)
            .placement(common_m.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_b.VizTooltipOptions()
            .mode(common_m.TooltipDisplayMode.MULTI)
            .sort(common_m.SortOrder.DESCENDING)
        )
    )
    if unit not in ("percentunit", "s"):
        panel = panel.min(0)
    for i, query in enumerate(queries):
        panel = panel.with_target(query.ref_id(chr(ord("A") + i)))
    return panel


def single(
    title: str, description: str, unit: str, query: prom_b.Dataquery, span: int = 6
) -> stat_b.Panel:
    return (
        stat_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(4)
        .with_target(query.ref_id("A").instant())
    )


def table(title: str, description: str, query: prom_b.Dataquery, span: int = 12) -> table_b.Panel:
    return (
        table_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(span)
        .height(8)
        .with_target(query.ref_id("A").instant().format(prom_m.PromQueryFormat.TABLE))
    )


def base(uid: str, title: str, description: str, namespace_from: str) -> dash_b.Dashboard:
    return (
        dash_b.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["volatility"])
        .editable()
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(
            dash_b.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(
            dash_b.QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query(f"label_values({namespace_from}, namespace)")
            .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        )
    )


def quantile(p: float, histogram: str, by: str, window: str = "5m", where: str = NS) -> str:
    return (
        f"histogram_quantile({p}, sum by (le, {by}) "
        f"(rate({m(histogram)}_bucket{{{where}}}[{window}])))"
    )


# --- the dashboards ---------------------------------------------------------------------------


def pipeline() -> dash_b.Dashboard:
    ingest = f'{NS}, {LABEL_SERVICE}="ingest"'
    return (
        base(
            "volatility-pipeline",
            "Volatility / Pipeline overview",
            "From exchange ticks to predictions: rates, freshness, latency, input set aside.",
            m("ticks_total"),
        )
        .with_row(dash_b.Row("Flow"))
        .with_panel(
            single(
                "Feed connected",
                "1 while the ingest holds the exchange WebSocket.",
                "none",
                q(f"min({m('feed_connected')}{{{NS}}})"),
            )
        )
        .with_panel(
            single(
                "Seconds since the last tick",
                "Exchange event time of the newest tick against now (stale-feed alert at 60 s).",
                "s",
                q(f"time() - max({m('last_event_time_seconds')}{{{ingest}}})"),
            )
        )
        .with_panel(
            single(
                "Predictions per second",
                "Every variant together.",
                "ops",
                q(f"sum(rate({m('predictions_total')}{{{NS}}}[5m]))"),
            )
        )
        .with_panel(
            single(
                "Spike ratio",
                "Share of predictions flagged as spikes over 5 minutes.",
                "percentunit",
                q(
                    f"sum(rate({m('spikes_total')}{{{NS}}}[5m])) / "
                    f"clamp_min(sum(rate({m('predictions_total')}{{{NS}}}[5m])), 1e-9)"
                ),
            )
        )
        .with_panel(
            series(
                "Ticks per second",
                "Ticks published by the ingest, per product.",
                "ops",
                q(
                    f"sum by ({LABEL_PRODUCT}) (rate({m('ticks_total')}{{{ingest}}}[1m]))",
                    legend(LABEL_PRODUCT),
                ),
            )
        )
        .with_panel(
            series(
                "Feature vectors per second",
                "Vectors emitted by the featurizer (by a tick or by a watermark), per product.",
                "ops",
                q(
                    f"sum by ({LABEL_PRODUCT}) (rate({m('feature_vectors_total')}{{{NS}}}[1m]))",
                    legend(LABEL_PRODUCT),
                ),
                q(
                    f"sum by ({LABEL_PRODUCT}) (rate({m('watermark_vectors_total')}{{{NS}}}[1m]))",
                    legend(LABEL_PRODUCT) + " (watermark)",
                ),
            )
        )
        .with_panel(
            series(
                "Predictions per second",
                "Predictions published by the consumer, per model variant.",
                "ops",
                q(
                    f"sum by ({LABEL_VARIANT}) (rate({m('predictions_total')}{{{NS}}}[1m]))",
                    legend(LABEL_VARIANT),
                ),
            )
        )
        .with_panel(
            series(
                "Spike ratio",
                "Share of predictions flagged as spikes, per model variant.",
                "percentunit",
                q(
                    f"sum by ({LABEL_VARIANT}) (rate({m('spikes_total')}{{{NS}}}[5m])) / "
                    f"clamp_min(sum by ({LABEL_VARIANT}) "
                    f"(rate({m('predictions_total')}{{{NS}}}[5m])), 1e-9)",
                    legend(LABEL_VARIANT),
                ),
            )
        )
        .with_row(dash_b.Row("Latency"))
        .with_panel(
            series(
                "Tick to prediction",
                "From a window's closing tick entering the pipeline to its prediction.",
                "s",
                q(
                    quantile(0.5, "tick_to_prediction_seconds", LABEL_VARIANT),
                    "p50 {{model_variant}}",
                ),
                q(
                    quantile(0.99, "tick_to_prediction_seconds", LABEL_VARIANT),
                    "p99 {{model_variant}}",
                ),
            )
        )
        .with_panel(
            series(
                "Batch processing time p99",
                "Time to handle one batch of input messages, per service.",
                "s",
                q(quantile(0.99, "processing_seconds", LABEL_SERVICE), legend(LABEL_SERVICE)),
            )
        )
        .with_row(dash_b.Row("Input set aside"))
        .with_panel(
            series(
                "Dead letters per second",
                "Messages sent to the dead-letter topic, per service and reason.",
                "ops",
                q(
                    f"sum by ({LABEL_SERVICE}, {LABEL_REASON}) "
                    f"(rate({m('deadletters_total')}{{{NS}}}[5m]))",
                    legend(LABEL_SERVICE, LABEL_REASON),
                ),
                span=8,
            )
        )
        .with_panel(
            series(
                "Malformed inputs per second",
                "Inputs set aside as unusable, per service and reason.",
                "ops",
                q(
                    f"sum by ({LABEL_SERVICE}, {LABEL_REASON}) "
                    f"(rate({m('malformed_total')}{{{NS}}}[5m]))",
                    legend(LABEL_SERVICE, LABEL_REASON),
                ),
                span=8,
            )
        )
        .with_panel(
            series(
                "Late and duplicate ticks per second",
                "Ticks the featurizer set aside as late (a window already closed) or ignored as "
                "duplicates.",
                "ops",
                q(f"sum(rate({m('late_ticks_total')}{{{NS}}}[5m]))", "late"),
                q(f"sum(rate({m('duplicate_ticks_total')}{{{NS}}}[5m]))", "duplicate"),
                span=8,
            )
        )
        .with_panel(
            series(
                "Exchange connection",
                "Reconnects, disconnects by reason, sequence gaps.",
                "ops",
                q(f"sum(rate({m('reconnects_total')}{{{NS}}}[5m]))", "reconnects"),
                q(
                    f"sum by ({LABEL_REASON}) (rate({m('disconnects_total')}{{{NS}}}[5m]))",
                    "disconnect " + legend(LABEL_REASON),
                ),
                q(f"sum(rate({m('sequence_gaps_total')}{{{NS}}}[5m]))", "sequence gaps"),
                span=WIDTH,
            )
        )
    )


def api_slo() -> dash_b.Dashboard:
    scoring = f'{NS}, method="POST"'
    return (
        base(
            "volatility-api-slo",
            "Volatility / API SLOs",
            "Scoring requests (POST) against the availability and latency objectives the "
            "burn-rate alerts watch.",
            m("http_requests_total"),
        )
        .with_row(dash_b.Row("Objectives"))
        .with_panel(
            single(
                "Error ratio, 1 h",
                "Scoring requests answered with a 5xx over the last hour.",
                "percentunit",
                q("namespace:volatility_api_errors:ratio_rate1h{" + NS + "}"),
            )
        )
        .with_panel(
            single(
                "Error ratio, 3 d",
                "Scoring requests answered with a 5xx over three days.",
                "percentunit",
                q("namespace:volatility_api_errors:ratio_rate3d{" + NS + "}"),
            )
        )
        .with_panel(
            single(
                "Slow ratio, 1 h",
                "Scoring requests slower than the latency objective's bound over the last hour.",
                "percentunit",
                q("namespace:volatility_api_slow:ratio_rate1h{" + NS + "}"),
            )
        )
        .with_panel(
            single(
                "Slow ratio, 3 d",
                "Scoring requests slower than the latency objective's bound over three days.",
                "percentunit",
                q("namespace:volatility_api_slow:ratio_rate3d{" + NS + "}"),
            )
        )
        .with_panel(
            series(
                "Error ratio by window",
                "The burn-rate alerts compare a long and a short window (1 h with 5 m, 6 h with "
                "30 m, 1 d with 2 h, 3 d with 6 h).",
                "percentunit",
                *(
                    q("namespace:volatility_api_errors:ratio_rate" + w + "{" + NS + "}", w)
                    for w in ("5m", "1h", "6h", "3d")
                ),
            )
        )
        .with_panel(
            series(
                "Slow ratio by window",
                "Share of scoring requests slower than the latency objective's bound.",
                "percentunit",
                *(
                    q("namespace:volatility_api_slow:ratio_rate" + w + "{" + NS + "}", w)
                    for w in ("5m", "1h", "6h", "3d")
                ),
            )
        )
        .with_row(dash_b.Row("Traffic"))
        .with_panel(
            series(
                "Requests per second",
                "Every route, by route template and status.",
                "reqps",
                q(
                    f"sum by (route, status) (rate({m('http_requests_total')}{{{NS}}}[5m]))",
                    "{{route}} {{status}}",
                ),
            )
        )
        .with_panel(
            series(
                "Scoring latency",
                "In the server, from receiving a request to sending its last byte.",
                "s",
                *(
                    q(
                        quantile(p, "http_request_duration_seconds", "route", where=scoring),
                        f"p{n} {{{{route}}}}",
                    )
                    for p, n in ((0.5, 50), (0.95, 95), (0.99, 99))
                ),
            )
        )
        .with_panel(
            series(
                "Inference time p99",
                "Time in onnxruntime for one request's rows, per model variant.",
                "s",
                q(quantile(0.99, "api_inference_seconds", LABEL_VARIANT), legend(LABEL_VARIANT)),
            )
        )
        .with_panel(
            series(
                "Rows scored per second",
                "Feature rows scored by the API, per model variant.",
                "ops",
                q(
                    f"sum by ({LABEL_VARIANT}) (rate({m('api_rows_scored_total')}{{{NS}}}[5m]))",
                    legend(LABEL_VARIANT),
                ),
            )
        )
        .with_panel(
            table(
                "Models per pod",
                "Which variants each API pod has loaded, and which one answers by default.",
                q(
                    f"max by (pod, {LABEL_VARIANT}) ({m('api_model_loaded')}{{{NS}}}) + "
                    f"max by (pod, {LABEL_VARIANT}) ({m('api_model_active')}{{{NS}}})",
                ),
                span=WIDTH,
            ).description("Per API pod and variant: 0 not loaded, 1 loaded, 2 loaded and active.")
        )
    )


def model_quality() -> dash_b.Dashboard:
    by_feature = f"namespace, {LABEL_FEATURE}, {LABEL_PRODUCT}, {LABEL_VARIANT}"
    return (
        base(
            "volatility-model-quality",
            "Volatility / Model quality",
            "Live quality of the serving (active) and shadow variants once predictions meet "
            "their realized labels, and feature drift against the training data.",
            m("predictions_total"),
        )
        .with_row(dash_b.Row("Live quality"))
        .with_panel(
            series(
                "Live PR-AUC per variant",
                "Rolling PR-AUC of predictions whose horizon has passed, per variant and "
                "product; the role says which variant serves.",
                "none",
                q(
                    f"max by ({LABEL_VARIANT}, {LABEL_PRODUCT}, {LABEL_ROLE}) "
                    f"({m('live_pr_auc')}{{{NS}}})",
                    legend(LABEL_VARIANT, LABEL_PRODUCT, LABEL_ROLE),
                ),
            )
        )
        .with_panel(
            series(
                "Active minus shadow PR-AUC",
                "Below zero: the variant not serving does better on the same data "
                "(alerted beyond the margin, with enough labelled predictions).",
                "none",
                q(
                    f'max by ({LABEL_PRODUCT}) ({m("live_pr_auc")}{{{NS}, {LABEL_ROLE}="active"}}) '
                    f"- max by ({LABEL_PRODUCT}) "
                    f'({m("live_pr_auc")}{{{NS}, {LABEL_ROLE}="shadow"}})',
                    legend(LABEL_PRODUCT),
                ),
            )
        )
        .with_panel(
            series(
                "Labelled predictions behind the figures",
                "How many predictions each live figure rests on.",
                "none",
                q(
                    f"max by ({LABEL_VARIANT}, {LABEL_PRODUCT}, {LABEL_ROLE}) "
                    f"({m('live_labelled')}{{{NS}}})",
                    legend(LABEL_VARIANT, LABEL_PRODUCT, LABEL_ROLE),
                ),
            )
        )
        .with_panel(
            series(
                "Score distribution p50 / p90",
                "Spike scores the consumer produces, per variant.",
                "none",
                q(quantile(0.5, "score", LABEL_VARIANT), "p50 {{model_variant}}"),
                q(quantile(0.9, "score", LABEL_VARIANT), "p90 {{model_variant}}"),
            )
        )
        .with_row(dash_b.Row("Drift"))
        .with_panel(
            series(
                "Feature drift (PSI)",
                "Population stability index of each feature against the training "
                "distribution. These features follow the market's regime: an ordinary hour "
                "can sit at PSI 3-6 on the 300 s volatilities.",
                "none",
                q(
                    f"max by ({LABEL_FEATURE}) ({m('feature_psi')}{{{NS}}})",
                    legend(LABEL_FEATURE),
                ),
            )
        )
        .with_panel(
            table(
                "Most drifted features",
                "The ten largest PSI values now, by feature, product and variant.",
                q(
                    f"topk(10, max by ({LABEL_FEATURE}, {LABEL_PRODUCT}, {LABEL_VARIANT}) "
                    f"({m('feature_psi')}{{{NS}}}))"
                ),
            )
        )
        .with_panel(
            table(
                "Drift beyond training",
                "The ten largest ratios of a feature's PSI to the largest PSI an hour of the "
                "model's own training sessions showed; above 1 (and PSI above 0.25) for 15 "
                "minutes is alerted: a market the model has never seen.",
                q(
                    f"topk(10, max by ({by_feature}) ({m('feature_psi')}{{{NS}}}) "
                    f"/ on ({by_feature}) max by ({by_feature}) "
                    f"({m('feature_psi_training_max')}{{{NS}}}))"
                ),
            )
        )
    )


def kafka() -> dash_b.Dashboard:
    lag_seconds = (
        f"sum by (namespace, group, {LABEL_TOPIC}) ({m('consumer_lag')}{{{NS}}}) "
        f"/ on (namespace, {LABEL_TOPIC}) group_left clamp_min(sum by (namespace, {LABEL_TOPIC}) "
        f"(rate({m('messages_out_total')}{{{NS}}}[5m])), 0.001)"
    )
    return (
        base(
            "volatility-kafka",
            "Volatility / Kafka",
            "Consumer-group lag, throughput per topic, delivery errors and rebalances.",
            m("messages_in_total"),
        )
        .with_panel(
            series(
                "Consumer lag (seconds of input)",
                "Messages behind over the rate the topic is written at (alerted above 30 s).",
                "s",
                q(lag_seconds, "{{group}} on {{topic}}"),
            )
        )
        .with_panel(
            series(
                "Consumer lag (messages)",
                f"High watermark minus the group's position, summed over partitions "
                f"(the consumer's group is {GROUP_CONSUMER}).",
                "short",
                q(
                    f"sum by (group, {LABEL_TOPIC}) ({m('consumer_lag')}{{{NS}}})",
                    "{{group}} on {{topic}}",
                ),
            )
        )
        .with_panel(
            series(
                "Messages produced per second",
                "Per topic and producing service.",
                "ops",
                q(
                    f"sum by ({LABEL_TOPIC}, {LABEL_SERVICE}) "
                    f"(rate({m('messages_out_total')}{{{NS}}}[1m]))",
                    legend(LABEL_TOPIC, LABEL_SERVICE),
                ),
            )
        )
        .with_panel(
            series(
                "Messages consumed per second",
                "Per topic and consuming service.",
                "ops",
                q(
                    f"sum by ({LABEL_TOPIC}, {LABEL_SERVICE}) "
                    f"(rate({m('messages_in_total')}{{{NS}}}[1m]))",
                    legend(LABEL_TOPIC, LABEL_SERVICE),
                ),
            )
        )
        .with_panel(
            series(
                "Delivery errors per second",
                "Produced messages the broker did not acknowledge.",
                "ops",
                q(
                    f"sum by ({LABEL_SERVICE}) (rate({m('delivery_errors_total')}{{{NS}}}[5m]))",
                    legend(LABEL_SERVICE),
                ),
                span=8,
            )
        )
        .with_panel(
            series(
                "Rebalance events",
                "Partitions assigned, revoked or lost, per service.",
                "short",
                q(
                    f"sum by ({LABEL_SERVICE}, event) "
                    f"(increase({m('rebalances_total')}{{{NS}}}[5m]))",
                    legend(LABEL_SERVICE, "event"),
                ),
                span=8,
            )
        )
        .with_panel(
            series(
                "State rebuild messages per second",
                "Messages re-read after an assignment to rebuild per-partition state.",
                "ops",
                q(
                    f"sum by ({LABEL_SERVICE}) "
                    f"(rate({m('state_rebuild_messages_total')}{{{NS}}}[5m]))",
                    legend(LABEL_SERVICE),
                ),
                span=8,
            )
        )
    )


@dataclass(frozen=True)
class Spec:
    file: str
    build: Callable[[], dash_b.Dashboard]


DASHBOARDS = (
    Spec("volatility-pipeline.json", pipeline),
    Spec("volatility-api-slo.json", api_slo),
    Spec("volatility-model-quality.json", model_quality),
    Spec("volatility-kafka.json", kafka),
)


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    out = {}
    for spec in DASHBOARDS:
        text = json.dumps(spec.build().build(), cls=JSONEncoder, indent=2, sort_keys=True)
        out[spec.file] = text + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.dashboards", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT, help="directory of the JSON files")
    parser.add_argument(
        "--check", action="store_true", help="fail if the files differ; write nothing"
    )
    args = parser.parse_args(argv)
    wanted = render()
    present = {p.name: p.read_text() for p in args.out.glob("*.json")}
    stale = sorted(set(present) - set(wanted))
    changed = sorted(f for f, text in wanted.items() if present.get(f) != text)
    if args.check:
        for name in changed + stale:
            sys.stderr.write(f"{args.out / name} is out of date: run python -m tools.dashboards\n")
        return 1 if changed or stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (args.out / name).unlink()
    for name in changed:
        (args.out / name).write_text(wanted[name])
    sys.stdout.write(
        f"{len(wanted)} dashboards in {args.out}: {len(changed)} written, {len(stale)} removed\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
