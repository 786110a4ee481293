"""`volatility operator`: run the ModelVariant operator (kopf) in one namespace."""

from __future__ import annotations

import argparse
import logging
import os
import sys

DEFAULT_LIVENESS = "http://0.0.0.0:8080/healthz"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Watch ModelVariant resources in one namespace and roll the governed Deployments "
        "(the release's API and consumer) to the requested model variant."
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE"),
        help="namespace to operate in (default: POD_NAMESPACE)",
    )
    parser.add_argument(
        "--default-workloads",
        default=os.environ.get("OPERATOR_DEFAULT_WORKLOADS", ""),
        metavar="ROLE=NAME,...",
        help="Deployments governed when a ModelVariant names none, e.g. "
        "api=rel-volatility-api,consumer=rel-volatility-consumer "
        "(default: OPERATOR_DEFAULT_WORKLOADS)",
    )
    parser.add_argument(
        "--probe-pods",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ask every pod what it serves (GET /version: API and consumer) before "
        "reporting Ready; --no-probe-pods trusts the pod template and readiness (default: on)",
    )
    parser.add_argument(
        "--prometheus-url",
        default=os.environ.get("OPERATOR_PROMETHEUS_URL") or None,
        help="Prometheus base URL for automatic rollback (default: OPERATOR_PROMETHEUS_URL; "
        "none disables it)",
    )
    parser.add_argument(
        "--prometheus-selector",
        default=os.environ.get("OPERATOR_PROMETHEUS_SELECTOR", ""),
        help='label matchers added to every query, e.g. namespace="prod"',
    )
    parser.add_argument(
        "--signal-interval", type=float, default=10.0, help="seconds between Prometheus samples"
    )
    parser.add_argument(
        "--busy-interval",
        type=float,
        default=0.5,
        help="seconds between looks while a change is in flight",
    )
    parser.add_argument(
        "--idle-interval", type=float, default=5.0, help="seconds between looks when steady"
    )
    parser.add_argument(
        "--watch-tolerance",
        type=float,
        default=60.0,
        help="seconds the watch may lag behind the API server before liveness fails",
    )
    parser.add_argument(
        "--liveness",
        default=DEFAULT_LIVENESS,
        help=f"liveness endpoint URL; empty disables it (default: {DEFAULT_LIVENESS})",
    )
    parser.add_argument(
        "--log-format", choices=("json", "text"), default="json", help="log line format"
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    import kopf

    from volatility_operator import handlers
    from volatility_operator.config import OperatorConfig
    from volatility_operator.spec import SpecError, parse_workloads

    if not args.namespace:
        print("--namespace (or POD_NAMESPACE) is required", file=sys.stderr)  # noqa: T201
        return 2
    try:
        workloads = parse_workloads(args.default_workloads)
    except SpecError as exc:
        print(f"--default-workloads: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    config = OperatorConfig(
        namespace=args.namespace,
        default_workloads=workloads,
        probe_pods=args.probe_pods,
        prometheus_url=args.prometheus_url,
        prometheus_selector=args.prometheus_selector,
        busy_interval=args.busy_interval,
        idle_interval=args.idle_interval,
        signal_interval=args.signal_interval,
        watch_tolerance=args.watch_tolerance,
    )
    log_format = kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(verbose=args.verbose, log_format=log_format)
    if not args.verbose:
        # kopf logs every successful handler call; the operator logs what it decides.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        registry=handlers.REGISTRY,
        standalone=True,  # one replica (Recreate): no peering objects, no peering RBAC
        namespaces=[config.namespace],
        liveness_endpoint=args.liveness or None,
        memo=kopf.Memo(config=config),
    )
    return 0
