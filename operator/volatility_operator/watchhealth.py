"""Detecting a stalled watch: the liveness probe's test. Pure.

kopf learns of changes through one watch stream. If that stream stalls (a half-open
connection, a stuck reader), the operator looks alive but reacts to nothing. The probe lists
the resources directly from the API server and compares each one's resourceVersion with the
last one the watch delivered: a difference that outlasts `tolerance` seconds means the watch
is not delivering, and the probe fails so that the kubelet restarts the operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class WatchHealth:
    tolerance: float
    seen: dict[str, str] = field(default_factory=dict)
    behind_since: dict[str, float] = field(default_factory=dict)

    def delivered(self, name: str, resource_version: str) -> None:
        """The watch delivered ``name`` at ``resource_version``."""
        self.seen[name] = resource_version

    def deleted(self, name: str) -> None:
        self.seen.pop(name, None)
        self.behind_since.pop(name, None)

    def check(self, listed: Mapping[str, str], now: float) -> str | None:
        """The problem, if the watch has been behind the API server for too long."""
        for name in list(self.behind_since):
            if name not in listed:
                del self.behind_since[name]
        stalled = []
        for name, version in listed.items():
            if self.seen.get(name) == version:
                self.behind_since.pop(name, None)
                continue
            since = self.behind_since.setdefault(name, now)
            if now - since > self.tolerance:
                stalled.append(f"{name} (behind for {now - since:.0f}s)")
        if stalled:
            return "the watch has not delivered the latest state of: " + ", ".join(sorted(stalled))
        return None
