"""``volatility serve``: the API under uvicorn, with JSON logs and the shipped models by default."""

from __future__ import annotations

import argparse
import os

from volatility.names import VARIANTS

APP_FACTORY = "volatility.api.app:create_app"


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1); each loads the models and keeps its own metrics",
    )
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        help="active model variant (default: MODEL_VARIANT or baseline)",
    )
    parser.add_argument(
        "--model-dir", help="directory of <variant>/model.onnx (default: MODEL_DIR)"
    )
    parser.add_argument(
        "--variant-file",
        help="file naming the active variant, watched for changes (MODEL_VARIANT_FILE)",
    )
    parser.add_argument(
        "--predictions",
        choices=("none", "kafka"),
        help="serve the pipeline's predictions (/predictions/*) from the Kafka topic "
        "(KAFKA_BOOTSTRAP_SERVERS); default: API_PREDICTIONS_SOURCE or none",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from volatility.runtime import configure_logging
    from volatility.settings import RuntimeSettings

    # Settings travel through the environment so that every worker process reads the same ones.
    for env, value in (
        ("MODEL_VARIANT", args.variant),
        ("MODEL_DIR", args.model_dir),
        ("MODEL_VARIANT_FILE", args.variant_file),
        ("API_PREDICTIONS_SOURCE", args.predictions),
    ):
        if value:
            os.environ[env] = value
    # The process is the API's alone here: its garbage collection may be tuned for it.
    os.environ.setdefault("API_TUNE_GC", "true")
    configure_logging(RuntimeSettings(), "api")
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,  # keep the JSON handler configured above
        access_log=args.access_log,
        server_header=False,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="volatility serve", description=__doc__)
    add_serve_arguments(parser)
    return run_serve(parser.parse_args(argv))
