"""The client against the simulator over real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time

from volatility.exchange.client import ClientStats, ExchangeClient
from volatility.exchange.simulator import start_simulator, synthetic_source

from .conftest import WAIT_S, client_config, running_client

PRODUCTS = ("BTC-USD", "ETH-USD")


def _subscribed(s: ClientStats) -> bool:
    return s.subscriptions.get("ticker") == PRODUCTS and "heartbeats" in s.subscriptions


def test_ticks_of_both_products_and_heartbeats_arrive() -> None:
    with (
        start_simulator(synthetic_source(5), speed=20.0) as sim,
        running_client(client_config(sim.url)) as (client, frames),
    ):
        assert client.wait_for(
            lambda s: s.frames_by_channel["heartbeats"] >= 1 and s.ticks >= 30 and _subscribed(s),
            WAIT_S,
        )
        stats = client.stats()
        assert {t.product_id for f in list(frames) for t in f.ticks} == set(PRODUCTS)
        assert stats.connects == 1 and stats.reconnects == 0 and stats.connected
        assert stats.sequence_gaps == 0 and stats.sequence_backwards == 0
        assert stats.malformed == {}
        assert stats.last_frame_at is not None and stats.last_event_time is not None


def test_a_dropped_connection_is_reconnected_and_resubscribed() -> None:
    with (
        start_simulator(synthetic_source(5), speed=20.0) as sim,
        running_client(client_config(sim.url)) as (client, _frames),
    ):
        assert client.wait_for(lambda s: s.ticks >= 10 and _subscribed(s), WAIT_S)
        assert sim.drop_connections() == 1
        assert client.wait_for(lambda s: s.reconnects == 1, WAIT_S)
        after = client.stats().ticks
        assert client.wait_for(lambda s: s.ticks >= after + 10 and _subscribed(s), WAIT_S)
        stats = client.stats()
        assert stats.disconnects["closed"] == 1
        assert sim.stats().subscribe_messages == 4  # ticker + heartbeats, twice
        assert sim.stats().connections_total == 2
        assert stats.sequence_gaps == 0  # numbering restarted with the new connection


def test_a_silent_feed_trips_the_watchdog() -> None:
    with (
        start_simulator(synthetic_source(5), speed=20.0) as sim,
        running_client(client_config(sim.url, stale_after=1.0)) as (client, _frames),
    ):
        assert client.wait_for(lambda s: s.ticks >= 10, WAIT_S)
        assert sim.silence_connections() == 1
        silenced_at = time.monotonic()
        assert client.wait_for(lambda s: s.disconnects["stale"] == 1, WAIT_S)
        assert time.monotonic() - silenced_at >= 0.5  # not long before the stale limit
        assert client.wait_for(lambda s: s.reconnects == 1, WAIT_S)
        after = client.stats().ticks
        assert client.wait_for(lambda s: s.ticks >= after + 10, WAIT_S)


def test_sequence_gaps_and_malformed_frames_are_counted() -> None:
    with (
        start_simulator(synthetic_source(5), speed=20.0) as sim,
        running_client(client_config(sim.url)) as (client, _frames),
    ):
        assert client.wait_for(lambda s: s.ticks >= 5, WAIT_S)
        assert sim.skip_sequence(3) == 1
        assert client.wait_for(lambda s: s.sequence_gaps == 1, WAIT_S)
        assert client.stats().sequence_missed == 3
        sim.inject_raw("not json")
        sim.inject_raw('{"type":"error","message":"Failed to subscribe"}')
        sim.inject_raw(
            '{"channel":"ticker","timestamp":"2026-04-04T21:13:43Z","events":['
            '{"tickers":[{"product_id":"BTC-USD","price":"1","best_bid":"2",'
            '"best_ask":"1"}]}]}'
        )
        assert client.wait_for(
            lambda s: s.malformed == {"not_json": 1, "error_frame": 1, "crossed_book": 1}, WAIT_S
        )
        before = client.stats().ticks
        assert client.wait_for(lambda s: s.ticks > before, WAIT_S)  # and it carries on
        assert client.stats().connects == 1


def test_an_unreachable_server_is_retried_with_backoff_and_stop_is_prompt() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ExchangeClient(client_config(f"ws://127.0.0.1:{port}", connect_timeout=1.0))
    stop = threading.Event()
    thread = threading.Thread(target=client.run, args=(stop, lambda _f: None), daemon=True)
    thread.start()
    assert client.wait_for(lambda s: s.connect_failures >= 3, WAIT_S)
    stop.set()
    stopped_at = time.monotonic()
    thread.join(timeout=5.0)
    assert not thread.is_alive()
    assert time.monotonic() - stopped_at < 2.0
    assert client.stats().connects == 0


def test_two_clients_share_one_market_clock() -> None:
    with start_simulator(synthetic_source(9), speed=20.0, timestamps="keep") as sim:
        with running_client(client_config(sim.url)) as (a, frames_a):
            assert a.wait_for(lambda s: s.ticks >= 20, WAIT_S)
            with running_client(client_config(sim.url)) as (b, frames_b):
                assert b.wait_for(lambda s: s.ticks >= 20, WAIT_S)
                assert a.wait_for(lambda s: s.ticks >= 60, WAIT_S)
        ticks_a = [(t.event_time, t.price) for f in frames_a for t in f.ticks]
        ticks_b = [(t.event_time, t.price) for f in frames_b for t in f.ticks]
        # The late joiner sees the same market from where it joined, not from the start.
        assert ticks_b[0] in ticks_a and ticks_b[0] != ticks_a[0]
        start = ticks_a.index(ticks_b[0])
        common = min(len(ticks_a) - start, len(ticks_b))
        assert ticks_a[start : start + common] == ticks_b[:common]
