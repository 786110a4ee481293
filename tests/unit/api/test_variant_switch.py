"""Switching the active variant in a running server loses no request and mixes no models."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from tests.unit.api.conftest import api_settings, feature_rows, named, write_ml_model
from volatility.api import watch
from volatility.api.app import api_state, create_app
from volatility.api.registry import ModelRegistry, Served
from volatility.api.watch import reload_models
from volatility.names import VariantName
from volatility.scoring.contract import model_path
from volatility.scoring.model import Model


def write_variant(path: Path, variant: str) -> None:
    """Atomically, as an operator (or a ConfigMap update) would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(variant + "\n")
    os.replace(tmp, path)


def active_is(variant: str) -> Any:
    return lambda served: served is not None and served.active == variant


@dataclass
class LiveServer:
    url: str
    registry: ModelRegistry
    variant_file: Path


@pytest.fixture
def live_server(model_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """uvicorn in a thread, on a socket bound here (clients may connect before it serves)."""
    variant_file = tmp_path / "variant"
    write_variant(variant_file, "baseline")
    settings = api_settings(model_dir, variant_file=variant_file, variant_poll_seconds=0.005)
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    registry = api_state(app).registry
    assert registry.wait_for(lambda served: served is not None, timeout=30)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", registry, variant_file)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


class Responses:
    """Responses collected by the firing threads; the main thread can wait for more of them."""

    def __init__(self) -> None:
        self.items: list[tuple[int, Any]] = []
        self.errors: list[BaseException] = []
        self._cond = threading.Condition()

    def add(self, status: int, body: Any) -> None:
        with self._cond:
            self.items.append((status, body))
            self._cond.notify_all()

    def wait_for_more(self, count: int, timeout: float = 30) -> bool:
        with self._cond:
            target = len(self.items) + count
            return self._cond.wait_for(
                lambda: len(self.items) >= target or bool(self.errors), timeout
            )


def test_variant_file_switch_under_load_loses_no_request(
    live_server: LiveServer, models: dict[VariantName, Model]
) -> None:
    rows = feature_rows(16, seed=21)
    expected = {v: m.score(rows) for v, m in models.items()}
    assert not np.allclose(expected["baseline"], expected["ml"])  # answers tell the models apart
    body = {"instances": named(rows)}
    responses = Responses()
    stop = threading.Event()

    def fire() -> None:
        try:
            with httpx.Client(base_url=live_server.url, timeout=30) as client:
                while not stop.is_set():
                    r = client.post("/predict", json=body)
                    responses.add(r.status_code, r.json())
        except BaseException as exc:  # a lost request must fail the test, not vanish
            responses.errors.append(exc)
            raise

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        assert responses.wait_for_more(20)
        for variant in ["ml", "baseline"] * 3:
            write_variant(live_server.variant_file, variant)
            assert live_server.registry.wait_for(active_is(variant), timeout=30)
            assert responses.wait_for_more(20)  # some requests answered by this variant
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)

    assert not responses.errors
    statuses = {status for status, _ in responses.items}
    assert statuses == {200}
    seen = {b["variant"] for _, b in responses.items}
    assert seen == {"baseline", "ml"}
    for _, answer in responses.items:
        # Variant, version and scores come from one model: the snapshot is never mixed.
        variant = answer["variant"]
        assert answer["model_version"] == models[variant].contract.version
        np.testing.assert_allclose(answer["scores"], expected[variant], atol=1e-7)


def test_bad_variant_file_keeps_the_current_variant(live_server: LiveServer) -> None:
    write_variant(live_server.variant_file, "ml")
    assert live_server.registry.wait_for(active_is("ml"), timeout=30)
    write_variant(live_server.variant_file, "not-a-variant")
    write_variant(live_server.variant_file, "baseline")  # later, valid: still applied
    assert live_server.registry.wait_for(active_is("baseline"), timeout=30)
    with httpx.Client(base_url=live_server.url) as client:
        assert client.get("/version").json()["variant"] == "baseline"


def _copy_models(src: Path, dst: Path, variants: tuple[VariantName, ...]) -> Path:
    for v in variants:
        model_path(dst, v).parent.mkdir(parents=True)
        model_path(dst, v).write_bytes(model_path(src, v).read_bytes())
    return dst


def test_switch_loads_a_variant_that_appeared_later(model_dir: Path, tmp_path: Path) -> None:
    root = _copy_models(model_dir, tmp_path / "models", ("baseline",))
    registry = ModelRegistry(root)
    first = registry.load("baseline")
    assert set(first.models) == {"baseline"}
    with pytest.raises(FileNotFoundError):
        registry.switch("ml")
    assert registry.current is first  # the failed switch changed nothing
    write_ml_model(model_path(root, "ml"))
    served = registry.switch("ml")
    assert served.active == "ml"
    assert served.models["baseline"] is first.models["baseline"]  # kept, not reloaded


def test_reload_picks_up_new_model_files(model_dir: Path, tmp_path: Path) -> None:
    root = _copy_models(model_dir, tmp_path / "models", ("baseline", "ml"))
    registry = ModelRegistry(root)
    registry.load("baseline")
    write_ml_model(model_path(root, "ml"), version="test-ml-2")
    variant_file = tmp_path / "variant"
    write_variant(variant_file, "ml")
    reload_models(registry, variant_file)
    served: Served | None = registry.current
    assert served is not None
    assert (served.active, served.model.contract.version) == ("ml", "test-ml-2")


def test_reload_decides_after_a_switch_in_progress(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGHUP racing a file switch: the reload's choice is made once the switch is done, from
    the file as it is then, so it cannot reinstate the variant the switch replaced."""
    root = _copy_models(model_dir, tmp_path / "models", ("baseline",))
    registry = ModelRegistry(root)
    registry.load("baseline")
    variant_file = tmp_path / "variant"
    write_variant(variant_file, "baseline")
    write_ml_model(model_path(root, "ml"))

    loading_ml = threading.Event()
    finish_ml = threading.Event()
    load_one = registry._load_one

    def slow_ml(variant: VariantName) -> Model:
        if variant == "ml" and not finish_ml.is_set():
            loading_ml.set()
            assert finish_ml.wait(30)
        return load_one(variant)

    monkeypatch.setattr(registry, "_load_one", slow_ml)
    reads: list[tuple[str | None, bool]] = []
    read_variant = watch.read_variant

    def observed_read(path: Path) -> VariantName | None:
        chosen = read_variant(path)
        reads.append((chosen, registry.current is not None and registry.current.active == "ml"))
        return chosen

    monkeypatch.setattr(watch, "read_variant", observed_read)
    write_variant(variant_file, "ml")
    switching = threading.Thread(target=watch.apply_variant, args=(registry, variant_file))
    switching.start()
    assert loading_ml.wait(30), "the switch did not start loading ml"
    reloading = threading.Thread(target=reload_models, args=(registry, variant_file))
    reloading.start()
    finish_ml.set()
    switching.join(30)
    reloading.join(30)
    served = registry.current
    assert served is not None
    assert served.active == "ml"
    # The switch read the file first; the reload read it only once ml was active.
    assert reads == [("ml", False), ("ml", True)]
