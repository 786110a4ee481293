"""The ingest exports its exchange client's counters and derives its health from them."""

from __future__ import annotations

from prometheus_client import REGISTRY

from volatility.exchange.simulator import start_simulator, synthetic_source
from volatility.feed_monitor import FeedMonitor
from volatility.runtime import Health

from .conftest import WAIT_S, client_config, running_client


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_reconnects_gaps_and_malformed_frames_reach_the_metrics_and_health() -> None:
    handle = start_simulator(synthetic_source(5), speed=None)
    health = Health()
    try:
        with running_client(client_config(handle.url)) as (client, _frames):
            monitor = FeedMonitor(client, health)
            assert client.wait_for(lambda s: s.connected and s.ticks > 0, WAIT_S)
            monitor.sync()
            assert sample("volatility_feed_connected") == 1
            before = {
                "reconnects": sample("volatility_reconnects_total"),
                "closed": sample("volatility_disconnects_total", reason="closed"),
                "gaps": sample("volatility_sequence_gaps_total"),
                "not_json": sample(
                    "volatility_malformed_total", service="ingest", reason="not_json"
                ),
            }
            handle.inject_raw("this is not json")
            handle.skip_sequence(3)
            assert client.wait_for(lambda s: s.malformed["not_json"] >= 1, WAIT_S)
            assert client.wait_for(lambda s: s.sequence_gaps >= 1, WAIT_S)
            handle.drop_connections()
            assert client.wait_for(lambda s: s.reconnects >= 1 and s.connected, WAIT_S)
            monitor.sync()
            assert sample("volatility_reconnects_total") == before["reconnects"] + 1
            assert sample("volatility_disconnects_total", reason="closed") >= before["closed"] + 1
            assert sample("volatility_sequence_gaps_total") >= before["gaps"] + 1
            assert (
                sample("volatility_malformed_total", service="ingest", reason="not_json")
                == before["not_json"] + 1
            )
            assert health.alive
    finally:
        handle.stop()
