"""Throughput and latency of the Kafka services on a real broker over loopback.

    python -m tests.benchmarks.kafka_services [--ticks N] [--vectors N] [--live-seconds S]

Uses KAFKA_BOOTSTRAP_SERVERS when set, otherwise starts a private broker with the test
infrastructure (tests/infra/kafka_broker.py). The services run as real
`volatility featurize` / `volatility consume` processes; throughput is measured while each drains
a pre-filled topic, per wall second and per CPU second of that process. Latency is measured by
a reader of the predictions topic, from the ingest of the tick that closed each window (the
``trigger_time`` carried through) and from the window's end. Writes bench-results/kafka.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.infra.kafka_broker import KafkaBroker

PARTITIONS = 4
PRODUCTS = ("BTC-USD", "ETH-USD", "SOL-USD", "DOGE-USD")


def synthetic_ticks(
    products: tuple[str, ...], start: float, seconds: float, rate: float
) -> Iterator[Any]:
    """Random-walk quotes, ``rate`` ticks per second per product, in event-time order."""
    from volatility.ticks import Tick

    rng = random.Random(7)
    mids = dict.fromkeys(products, 100.0)
    n = int(seconds * rate)
    for i in range(n):
        for j, product in enumerate(products):
            t = start + (i + (j + 1) / (len(products) + 1)) / rate
            mid = mids[product] = mids[product] * math.exp(rng.gauss(0, 2e-4))
            half = mid * 5e-5
            yield Tick(product, t, mid, mid - half, mid + half)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    s = sorted(values)

    def q(p: float) -> float:
        return s[min(len(s) - 1, math.ceil(p * len(s)) - 1)] * 1000

    return {"n": len(s), "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": s[-1] * 1000}


class Bench:
    def __init__(self, bootstrap: str, workdir: Path) -> None:
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self.workdir = workdir
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.volatility = str(Path(sys.executable).with_name("volatility"))

    def topics(self, label: str) -> dict[str, str]:
        from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

        suffix = uuid.uuid4().hex[:6]
        names = {
            "KAFKA_TOPIC_TICKS": f"bench-{label}-ticks-{suffix}",
            "KAFKA_TOPIC_FEATURES": f"bench-{label}-features-{suffix}",
            "KAFKA_TOPIC_PREDICTIONS": f"bench-{label}-predictions-{suffix}",
            "KAFKA_TOPIC_DEADLETTER": f"bench-{label}-deadletter-{suffix}",
        }
        futures = self.admin.create_topics(
            [NewTopic(t, num_partitions=PARTITIONS, replication_factor=1) for t in names.values()]
        )
        for f in futures.values():
            f.result(30)
        _wait(
            lambda: all(t in self.admin.list_topics(timeout=5).topics for t in names.values()), 30
        )
        return {
            **names,
            "KAFKA_GROUP_FEATURIZER": f"bench-f-{suffix}",
            "KAFKA_GROUP_CONSUMER": f"bench-c-{suffix}",
        }

    def producer(self) -> Any:
        from confluent_kafka import Producer

        return Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 1,
                "compression.type": "lz4",
            }
        )

    def start(self, command: str, topics: dict[str, str], **env: str) -> _Proc:
        port = _free_port()
        log = (self.workdir / f"{command}-{port}.log").open("wb")
        proc = subprocess.Popen(
            [self.volatility, command],
            env={
                **os.environ,
                **topics,
                **env,
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "METRICS_PORT": str(port),
                "LOG_LEVEL": "WARNING",
                "FEATURIZER_PRODUCTS": ",".join(PRODUCTS),
                "CONSUMER_PRODUCTS": ",".join(PRODUCTS),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        p = _Proc(proc, port)
        _wait(p.ready, 60)
        return p


class _Proc:
    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc, self.port = proc, port

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return str(r.read().decode())

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"service exited with {self.proc.returncode}")
        try:
            return self._get("/readyz") == "ready"
        except OSError:
            return False

    def metric(self, prefix: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in self._get("/metrics").splitlines()
            if line.startswith(prefix)
        )

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError("benchmark condition not met in time")
        time.sleep(interval)  # polling a deadline-bounded condition
    return time.monotonic() - started


def _drain(
    services: list[_Proc], counter: str, total: int, timeout: float = 600
) -> dict[str, float]:
    """Time from the first message read to the last, summed over ``services``."""
    cpu0 = sum(s.cpu_seconds() for s in services)
    _wait(lambda: sum(s.metric(counter) for s in services) > 0, timeout, 0.005)
    t0 = time.monotonic()
    _wait(lambda: sum(s.metric(counter) for s in services) >= total, timeout, 0.05)
    wall = time.monotonic() - t0
    cpu = sum(s.cpu_seconds() for s in services) - cpu0
    return {
        "messages": total,
        "wall_seconds": round(wall, 3),
        "per_second": round(total / wall),
        "cpu_seconds": round(cpu, 3),
        "per_cpu_second": round(total / cpu) if cpu else 0,
    }


def bench_featurizer(bench: Bench, n_ticks: int, processes: int) -> dict[str, float]:
    from volatility.messages import encode_tick

    topics = bench.topics(f"feat{processes}")
    producer = bench.producer()
    seconds = n_ticks / len(PRODUCTS) / 20.0
    now = time.time()
    for tick in synthetic_ticks(PRODUCTS, 1.7e9, seconds, 20.0):
        _produce(producer, topics["KAFKA_TOPIC_TICKS"], tick.product_id, encode_tick(tick, now))
    producer.flush(60)
    services = [bench.start("featurize", topics) for _ in range(processes)]
    try:
        return _drain(services, "volatility_messages_in_total", n_ticks)
    finally:
        for s in services:
            s.stop()


def bench_consumer(bench: Bench, n_vectors: int, processes: int) -> dict[str, float]:
    from volatility.features import FeatureEngine
    from volatility.messages import encode_features

    topics = bench.topics(f"cons{processes}")
    engine = FeatureEngine()
    vectors = [v for t in synthetic_ticks(PRODUCTS, 1.7e9, 400, 20.0) for v in engine.update(t)]
    producer = bench.producer()
    now = time.time()
    for i in range(n_vectors):
        v = vectors[i % len(vectors)]
        _produce(producer, topics["KAFKA_TOPIC_FEATURES"], v.product_id, encode_features(v, now))
    producer.flush(60)
    services = [bench.start("consume", topics) for _ in range(processes)]
    try:
        return _drain(services, "volatility_messages_in_total", n_vectors)
    finally:
        for s in services:
            s.stop()


def _produce(producer: Any, topic: str, key: str, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.05)


def bench_latency(bench: Bench, seconds: float, rate: float | None) -> dict[str, Any]:
    """Ticks published as they happen (``rate`` per product per second, or as fast as one
    process can when None) through both services; latencies seen by a predictions reader."""
    from confluent_kafka import Consumer, TopicPartition

    from volatility.messages import decode_prediction, encode_tick, encode_watermark
    from volatility.watermarks import ExchangeClock

    products = PRODUCTS[:2]
    topics = bench.topics("live" if rate else "max")
    featurizer = bench.start("featurize", topics)
    consumer = bench.start("consume", topics)
    reader = Consumer({"bootstrap.servers": bench.bootstrap, "group.id": "bench-reader"})
    reader.assign(
        [TopicPartition(topics["KAFKA_TOPIC_PREDICTIONS"], p, 0) for p in range(PARTITIONS)]
    )
    producer = bench.producer()
    ticks_topic = topics["KAFKA_TOPIC_TICKS"]
    # The windows need a minute of history before the first vector: publish it at once.
    start = time.time()
    # Ticks and watermarks, as the ingest publishes them (the exchange clock: the ticks' times).
    clock = ExchangeClock(products)

    def publish(tick: Any, now: float) -> None:
        for mark in clock.observe(tick.event_time):
            _produce(producer, ticks_topic, mark.product_id, encode_watermark(mark, now))
        _produce(producer, ticks_topic, tick.product_id, encode_tick(tick, now))

    for tick in synthetic_ticks(products, start - 70, 70, 20.0):
        publish(tick, time.time())
    producer.flush(30)
    tick_lat: list[float] = []
    window_lat: list[float] = []
    measured_from = time.time() + 2  # let the backlog drain before measuring
    published = 0

    def collect() -> None:
        for m in reader.consume(1000, 0):
            if m.error() is None:
                received = time.time()
                p = decode_prediction(m.value() or b"")
                if p.event_time >= measured_from and p.trigger_time is not None:
                    tick_lat.append(received - p.trigger_time)
                    window_lat.append(received - p.event_time)

    live = synthetic_ticks(products, start, 1e7, rate or 1000.0)
    ends = time.time() + seconds
    while time.time() < ends:
        if rate:
            tick = next(live)
            delay = tick.event_time - time.time()
            if delay > 0:
                reader_deadline = time.monotonic() + delay
                while time.monotonic() < reader_deadline:
                    collect()
                    time.sleep(min(0.002, max(reader_deadline - time.monotonic(), 0)))
            # Event time is the exchange's clock: here, the moment of publishing.
            from volatility.ticks import Tick

            now = time.time()
            publish(Tick(tick.product_id, now, tick.price, tick.best_bid, tick.best_ask), now)
            producer.poll(0)
        else:
            now = time.time()
            for tick in [next(live) for _ in range(200)]:
                publish(tick, now)
            producer.poll(0)
            collect()
        published += 1
    producer.flush(30)
    drain_until = time.monotonic() + 5
    while time.monotonic() < drain_until:
        collect()
        time.sleep(0.01)
    reader.close()
    featurizer.stop()
    consumer.stop()
    out: dict[str, Any] = {
        "tick_to_prediction": _percentiles(tick_lat),
        "window_end_to_prediction": _percentiles(window_lat) if rate else None,
    }
    if rate:
        out["ticks_per_second"] = rate * len(products)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.kafka_services", description=__doc__
    )
    parser.add_argument("--ticks", type=int, default=400_000)
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--live-seconds", type=float, default=60.0)
    parser.add_argument("--max-seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=Path("bench-results/kafka.json"))
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"partitions": PARTITIONS, "cpus": os.cpu_count()}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="kafka-bench-") as tmp:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            broker = stack.enter_context(KafkaBroker())
            bootstrap = broker.bootstrap_servers
        bench = Bench(bootstrap, Path(tmp))
        for processes in (1, 2):
            results[f"featurizer_{processes}proc"] = bench_featurizer(bench, args.ticks, processes)
            print("featurizer", processes, results[f"featurizer_{processes}proc"], flush=True)
            results[f"consumer_{processes}proc"] = bench_consumer(bench, args.vectors, processes)
            print("consumer", processes, results[f"consumer_{processes}proc"], flush=True)
        results["latency_live"] = bench_latency(bench, args.live_seconds, 20.0)
        print("latency live", results["latency_live"], flush=True)
        results["latency_max"] = bench_latency(bench, args.max_seconds, None)
        print("latency max", results["latency_max"], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
