"""The models a process serves and which one is active, swapped as one immutable snapshot.

Each request reads :attr:`ModelRegistry.current` once and uses that snapshot throughout, so a
switch of variant in the middle of a request neither fails it nor mixes two models in one answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from volatility.names import VARIANTS, VariantName
from volatility.scoring.contract import ModelContractError, model_path
from volatility.scoring.model import Model

log = logging.getLogger(__name__)


class NotLoaded(LookupError):
    """The requested variant has no model in this process."""


@dataclass(frozen=True)
class Served:
    """An immutable view: the loaded models and the active variant."""

    active: VariantName
    models: Mapping[VariantName, Model]

    @property
    def model(self) -> Model:
        return self.models[self.active]

    def pick(self, variant: str | None) -> Model:
        if variant is None:
            return self.model
        for name, model in self.models.items():
            if name == variant:
                return model
        loaded = ", ".join(self.models) or "none"
        raise NotLoaded(f"model variant {variant!r} is not loaded (loaded: {loaded})")


class ModelRegistry:
    """Loads ``model_dir/<variant>/model.onnx`` files and publishes :class:`Served` snapshots."""

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int = 1,
        on_change: Callable[[Served], None] | None = None,
    ) -> None:
        self.model_dir = model_dir
        self._threads = threads
        self._on_change = on_change
        self._current: Served | None = None
        # Writers (switch, reload) are serialised; readers never take a lock.
        self._write = threading.Lock()
        self._changed = threading.Condition()

    @property
    def current(self) -> Served | None:
        return self._current

    def _load_one(self, variant: VariantName) -> Model:
        path = model_path(self.model_dir, variant)
        if not path.is_file():
            raise FileNotFoundError(f"no {variant} model at {path}")
        model = Model(path, threads=self._threads)
        if model.contract.variant != variant:
            raise ModelContractError(f"{path} declares variant {model.contract.variant!r}")
        return model

    def load(self, active: VariantName) -> Served:
        """(Re)load every variant on disk; ``active`` must load, the others may be absent."""
        with self._write:
            return self._load(active)

    def reload(self, choose: Callable[[Served | None], VariantName | None]) -> Served | None:
        """(Re)load every variant, the active one decided by ``choose(current)`` under the write
        lock: a switch in progress completes first, and no switch interleaves between the
        decision and the load (which would otherwise reinstate the variant it replaced)."""
        with self._write:
            active = choose(self._current)
            return None if active is None else self._load(active)

    def switch_to(self, choose: Callable[[], VariantName | None]) -> Served | None:
        """Switch to the variant ``choose()`` names, decided under the write lock."""
        with self._write:
            variant = choose()
            return None if variant is None else self._switch(variant)

    def _load(self, active: VariantName) -> Served:
        """Under the write lock."""
        models: dict[VariantName, Model] = {}
        for variant in VARIANTS:
            try:
                models[variant] = self._load_one(variant)
            except FileNotFoundError as exc:
                if variant == active:
                    raise
                log.info("variant not available", extra={"variant": variant, "reason": str(exc)})
            except (ModelContractError, OSError, RuntimeError) as exc:
                if variant == active:
                    raise
                log.error("variant failed to load", extra={"variant": variant, "error": str(exc)})
        return self._publish(Served(active, MappingProxyType(models)))

    def switch(self, variant: VariantName) -> Served:
        """Make ``variant`` active, loading it first if this process does not hold it yet."""
        with self._write:
            return self._switch(variant)

    def _switch(self, variant: VariantName) -> Served:
        """Under the write lock."""
        current = self._current
        models = dict(current.models) if current is not None else {}
        if current is not None and current.active == variant:
            return current
        if variant not in models:
            models[variant] = self._load_one(variant)
        return self._publish(Served(variant, MappingProxyType(models)))

    def _publish(self, served: Served) -> Served:
        with self._changed:
            self._current = served  # one reference assignment: readers see old or new, never a mix
            self._changed.notify_all()
        if self._on_change is not None:
            self._on_change(served)
        model = served.model
        log.info(
            "serving model",
            extra={
                "variant": served.active,
                "model_version": model.contract.version,
                "sha256": model.info.sha256,
                "loaded": sorted(served.models),
            },
        )
        return served

    def wait_for(self, predicate: Callable[[Served | None], bool], timeout: float) -> bool:
        """Block until ``predicate(current)`` holds (True) or ``timeout`` seconds pass (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self._current), timeout)
