"""Choosing the active variant at run time: a file naming it (polled) and SIGHUP (reload).

The file holds one variant name. Writing it (atomically: write a temporary file, then rename)
switches the running process; SIGHUP reloads every model from disk and re-reads the file.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from volatility.api.registry import ModelRegistry, Served
from volatility.names import VARIANTS, VariantName

log = logging.getLogger(__name__)


def read_variant(path: Path) -> VariantName | None:
    """The variant named in ``path``, or None (logged) if the file is absent or holds no variant."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("variant file unreadable", extra={"path": str(path), "error": str(exc)})
        return None
    for variant in VARIANTS:
        if text == variant:
            return variant
    log.warning("variant file names no variant", extra={"path": str(path), "content": text[:64]})
    return None


class VariantFile:
    """Notices changes of the file by its identity (inode, size, mtime), not by reading it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = self._identity()

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def changed(self) -> bool:
        identity = self._identity()
        if identity == self._seen:
            return False
        self._seen = identity
        return identity is not None


def apply_variant(registry: ModelRegistry, path: Path) -> None:
    """Switch to the variant the file names, read under the registry's write lock so that a
    concurrent reload and this switch each act on the file as it is when they run."""
    try:
        registry.switch_to(lambda: read_variant(path))
    except (OSError, ValueError, RuntimeError) as exc:
        # A variant that cannot load leaves the current one serving.
        log.error("variant switch failed", extra={"path": str(path), "error": str(exc)})


async def watch_variant_file(registry: ModelRegistry, file: VariantFile, every: float) -> None:
    while True:
        await asyncio.sleep(every)  # a poll period, not a wait for anything in particular
        if file.changed():
            await asyncio.to_thread(apply_variant, registry, file.path)


def reload_models(registry: ModelRegistry, variant_file: Path | None) -> None:
    """Reload every model from disk; the active variant is the file's, else the current one.

    The choice is made under the registry's write lock (one atomic decision): a SIGHUP racing a
    switch of the file can neither act on the file read before the switch nor undo it.
    """

    def choose(current: Served | None) -> VariantName | None:
        chosen = read_variant(variant_file) if variant_file is not None else None
        return chosen or (current.active if current is not None else None)

    try:
        registry.reload(choose)
    except (OSError, ValueError, RuntimeError) as exc:
        log.error("model reload failed", extra={"error": str(exc)})
