"""The `volatility` command: one subcommand per job, each with --help.

Subcommand modules are imported only to build their arguments; their heavy dependencies
(onnxruntime, confluent-kafka, scikit-learn...) are imported when the command runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple

from volatility import __version__


class Command(NamedTuple):
    name: str
    help: str
    module: str
    add: str
    run: str


COMMANDS: tuple[Command, ...] = (
    Command(
        "up",
        "run the whole pipeline in one process, with a live view and the API",
        "volatility.local",
        "add_arguments",
        "run",
    ),
    Command(
        "ingest",
        "stream exchange ticks into Kafka",
        "volatility.service_commands",
        "add_ingest_arguments",
        "run_ingest",
    ),
    Command(
        "featurize",
        "turn ticks from Kafka into feature vectors",
        "volatility.service_commands",
        "add_featurize_arguments",
        "run_featurize",
    ),
    Command(
        "consume",
        "score feature vectors from Kafka and publish predictions",
        "volatility.service_commands",
        "add_consume_arguments",
        "run_consume",
    ),
    Command(
        "serve",
        "serve predictions over HTTP",
        "volatility.api.command",
        "add_serve_arguments",
        "run_serve",
    ),
    Command(
        "replay",
        "publish recorded ticks as ingest would (Kafka or stdout)",
        "volatility.service_commands",
        "add_replay_arguments",
        "run_replay",
    ),
    Command(
        "kafka",
        "Kafka administration (`kafka init` creates the topics)",
        "volatility.service_commands",
        "add_kafka_arguments",
        "run_kafka",
    ),
    Command(
        "simulate",
        "run a local exchange simulator (replayed or synthetic ticks)",
        "volatility.exchange.commands",
        "add_simulate_arguments",
        "run_simulate",
    ),
    Command(
        "capture",
        "record exchange frames verbatim to rotating NDJSON files",
        "volatility.exchange.commands",
        "add_capture_arguments",
        "run_capture",
    ),
    Command(
        "train",
        "train the baseline and ML models from recordings",
        "volatility_training.commands",
        "add_train_arguments",
        "run_train",
    ),
    Command(
        "evaluate",
        "score recordings with the shipped models and report metrics",
        "volatility_training.commands",
        "add_evaluate_arguments",
        "run_evaluate",
    ),
    Command(
        "drift-report",
        "an HTML report comparing recordings with the models' training data (and PSI per feature)",
        "volatility_training.drift_report",
        "add_arguments",
        "run",
    ),
    Command(
        "operator",
        "run the ModelVariant operator: roll the API and consumer between model variants",
        "volatility_operator.command",
        "add_arguments",
        "run",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="volatility",
        description="Real-time detection of short-horizon volatility spikes in crypto markets.",
    )
    parser.add_argument("--version", action="version", version=f"volatility {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        try:
            module = importlib.import_module(cmd.module)
        except ImportError as exc:
            if (exc.name or "").startswith("volatility"):
                raise  # our own code is broken, not an extra missing
            p.set_defaults(_missing=f"`volatility {cmd.name}` needs an optional dependency: {exc}")
            continue
        getattr(module, cmd.add)(p)
        p.set_defaults(_run=getattr(module, cmd.run))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = getattr(args, "_missing", None)
    if missing:
        print(missing, file=sys.stderr)  # noqa: T201 - the command's own answer
        return 2
    return int(args._run(args))


if __name__ == "__main__":
    sys.exit(main())
