"""`make bench`: feature engine and embedded pipeline throughput on the real recordings.

    python -m tests.benchmarks.pipeline [--data DIR] [--repeats N]

Prints one line per figure and writes them to bench-results/pipeline.json. Figures, not
assertions: targets are stated next to each number.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

from tests.stream_reference import reference_vectors, replayed
from volatility.exchange.recordings import iter_ticks
from volatility.features import FeatureEngine
from volatility.settings import DEFAULT_MODEL_DIR

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "coinbase"


def bench_engine(files: list[Path], repeats: int) -> dict[str, float]:
    started = time.perf_counter()
    ticks = list(iter_ticks(files))
    parse_s = time.perf_counter() - started
    best = float("inf")
    vectors = 0
    for _ in range(repeats):
        started = time.perf_counter()
        engine = FeatureEngine()
        vectors = 0
        for tick in ticks:
            vectors += len(engine.update(tick))
        best = min(best, time.perf_counter() - started)
    return {
        "ticks": len(ticks),
        "vectors": vectors,
        "parse_ticks_per_s": len(ticks) / parse_s,
        "engine_ticks_per_s": len(ticks) / best,
    }


def bench_embedded(files: list[Path]) -> dict[str, float]:
    from volatility.exchange.simulator.server import start_simulator
    from volatility.exchange.simulator.sources import replay_source
    from volatility.local import EmbeddedPipeline

    source = replay_source(files)
    # The stream the simulator sends (files joined in time), with the watermarks its clock gives.
    ticks = list(source.open())
    n_ticks = len(ticks)
    expected = len(reference_vectors(replayed(ticks)))
    sim = start_simulator(source, speed=None, timestamps="keep")
    done = threading.Event()

    def count() -> int:
        return pipeline.state.n_predictions

    pipeline = EmbeddedPipeline(
        url=sim.url,
        products=("BTC-USD", "ETH-USD"),
        model_dir=DEFAULT_MODEL_DIR,
        variant="baseline",
        tick_source="bench",
        api_port=None,
        on_prediction=lambda _: done.set() if count() >= expected else None,
        max_skew=None,  # recorded timestamps are months old
    )
    started = time.perf_counter()
    pipeline.start()
    finished = done.wait(300)
    elapsed = time.perf_counter() - started
    pipeline.stop()
    sim.stop()
    return {
        "ticks": n_ticks,
        "predictions_expected": expected,
        "predictions": pipeline.state.n_predictions,
        "completed": float(finished),
        "seconds": elapsed,
        "ticks_per_s": n_ticks / elapsed,
        "predictions_per_s": pipeline.state.n_predictions / elapsed,
    }


def bench_wire(files: list[Path], repeats: int) -> dict[str, float]:
    """Features documents as the featurizer writes them and the consumer reads them."""
    from volatility.messages import decode_features_batch, encode_features_batch

    engine = FeatureEngine()
    vectors = [v for t in iter_ticks(files) for v in engine.update(t)]
    triggers = [v.event_time + 0.05 for v in vectors]
    batch = 2000
    best_encode = best_decode = float("inf")
    docs: list[bytes] = []
    for _ in range(repeats):
        started = time.perf_counter()
        docs = []
        for i in range(0, len(vectors), batch):
            docs += encode_features_batch(vectors[i : i + batch], triggers[i : i + batch])
        best_encode = min(best_encode, time.perf_counter() - started)
        started = time.perf_counter()
        for i in range(0, len(docs), batch):
            decode_features_batch(docs[i : i + batch])
        best_decode = min(best_decode, time.perf_counter() - started)
    return {
        "vectors": len(vectors),
        "bytes_per_document": sum(map(len, docs)) / len(docs),
        "encode_per_s": len(vectors) / best_encode,
        "decode_per_s": len(vectors) / best_decode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.pipeline",
        description="Benchmark the feature engine and the embedded pipeline on the recordings.",
    )
    parser.add_argument("--data", type=Path, default=DATA, help="folder of NDJSON recordings")
    parser.add_argument("--repeats", type=int, default=3, help="engine runs; the best is kept")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "pipeline.json")
    args = parser.parse_args()
    files = sorted(args.data.glob("*.ndjson"))
    results = {"engine": bench_engine(files, args.repeats)}
    e = results["engine"]
    print(
        f"parse:   {e['parse_ticks_per_s']:>12,.0f} ticks/s "
        f"({e['ticks']:,} ticks, {len(files)} files)"
    )
    print(
        f"engine:  {e['engine_ticks_per_s']:>12,.0f} ticks/s (target >= 100,000), "
        f"{e['vectors']:,} vectors"
    )
    results["wire"] = bench_wire(files, args.repeats)
    w = results["wire"]
    print(
        f"features documents: {w['bytes_per_document']:.0f} bytes, "
        f"written {w['encode_per_s']:,.0f}/s, read {w['decode_per_s']:,.0f}/s (batches of 2,000)"
    )
    results["embedded"] = bench_embedded(files)
    m = results["embedded"]
    print(
        f"embedded: {m['ticks_per_s']:>11,.0f} ticks/s through simulator -> WebSocket -> bus -> "
        f"features -> ONNX ({m['predictions']:,}/{m['predictions_expected']:,} predictions in "
        f"{m['seconds']:.1f} s, {m['predictions_per_s']:,.0f}/s)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
