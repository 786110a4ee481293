"""The live terminal view of `volatility up` (rich)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from volatility.features import FEATURE_NAMES

if TYPE_CHECKING:
    from volatility.local import EmbeddedPipeline

SHOWN_FEATURES = (
    "rv_10s",
    "rv_60s",
    "rv_300s",
    "tick_rate_60s",
    "spread_mean_60s",
    "vol_ratio_10_60",
)


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def render(pipeline: EmbeddedPipeline, api: str) -> Group:
    s = pipeline.state
    contract = pipeline.model.contract
    simulated = s.source != "live"
    banner = Text.assemble(
        ("SOURCE ", "bold"),
        (s.source.upper(), "bold black on yellow" if simulated else "bold black on green"),
        "  ",
        (s.source_detail, "yellow" if simulated else "green"),
    )
    feed = ""
    if pipeline.client is not None:
        cs = pipeline.client.stats()
        feed = (
            f"\nfeed {'connected' if cs.connected else 'DISCONNECTED'}   reconnects {cs.reconnects}"
            f"   sequence gaps {cs.sequence_gaps}   malformed {sum(cs.malformed.values())}"
        )
    header = Text.assemble(
        banner,
        f"\nmodel {contract.variant} v{contract.version} (threshold {contract.threshold:.3f})",
        f"   API {api}   uptime {time.monotonic() - s.started:,.0f} s",
        feed,
    )
    latest = pipeline.recent.latest()
    table = Table(expand=True)
    shadow_name = pipeline.shadow_model.contract.variant
    columns = ("product", "ticks/s", "ticks", "price", *SHOWN_FEATURES, "score", "spike")
    for col in (*columns, f"{shadow_name} (shadow)", "at"):
        table.add_column(col, justify="right" if col != "product" else "left")
    with s.lock:
        products = sorted(set(s.ticks) | set(pipeline.products))
        vectors = dict(s.vectors)
        ticks = dict(s.ticks)
        prices = dict(s.last_price)
        counts = (s.n_vectors, s.n_predictions, s.n_spikes)
    for p in products:
        vec = vectors.get(p)
        feats = vec.as_dict() if vec else {}
        pred = latest.get(p)
        table.add_row(
            p,
            f"{s.ticks_per_second(p):.1f}",
            f"{ticks.get(p, 0):,}",
            f"{prices[p]:,.2f}" if p in prices else "-",
            *(f"{feats[n]:.3f}" if n in feats else "warming up" for n in SHOWN_FEATURES),
            f"{pred.score:.3f}" if pred else "-",
            Text("SPIKE", "bold white on red") if pred and pred.spike else Text("-"),
            f"{pred.shadow.score:.3f}" if pred and pred.shadow else "-",
            _clock(pred.event_time) if pred else "-",
        )
    spikes = pipeline.recent.spikes()[-5:]
    spike_lines = Text(
        "\n".join(
            f"{_clock(x.event_time)}  {x.product_id}  score {x.score:.3f}" for x in reversed(spikes)
        )
        or "none yet"
    )
    footer = Text(
        f"feature vectors {counts[0]:,}   predictions {counts[1]:,}   spikes {counts[2]:,}   "
        f"({len(FEATURE_NAMES)} features; vectors need 60 s of history)   Ctrl-C to stop"
    )
    return Group(
        Panel(header, title="volatility"),
        table,
        _quality(pipeline),
        Panel(spike_lines, title="latest spikes"),
        footer,
    )


def _fmt(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"


def _quality(pipeline: EmbeddedPipeline) -> Table:
    """Live quality of the serving and the shadow variant, and the most drifting feature."""
    table = Table(expand=True, title="live model quality (predictions whose horizon has passed)")
    for col in ("variant", "role", "product", "labelled", "PR-AUC", "precision", "recall"):
        table.add_column(col, justify="left" if col in ("variant", "role", "product") else "right")
    table.add_column("Brier", justify="right")
    table.add_column("spike rate", justify="right")
    table.add_column("drift (max PSI)", justify="right")
    drift = pipeline.monitor.max_psi()
    rows = pipeline.monitor.rows()
    for row in rows:
        f = row.figures
        feature, psi = drift.get(row.product, ("", float("nan")))
        table.add_row(
            row.variant,
            row.role,
            row.product,
            f"{f.labelled:,}",
            _fmt(f.pr_auc),
            _fmt(f.precision),
            _fmt(f.recall),
            _fmt(f.brier),
            _fmt(f.prevalence),
            f"{feature} {psi:.2f}" if feature else "-",
        )
    if not rows:
        horizon = int(pipeline.model.contract.horizon_seconds)
        regime = int(pipeline.model.contract.label_regime_seconds)
        table.add_row("-", "-", "-", f"needs {regime + horizon} s of vectors", *("-",) * 6)
    return table


def run_view(
    pipeline: EmbeddedPipeline, stop: threading.Event, deadline: float | None, api: str
) -> None:
    with Live(render(pipeline, api), refresh_per_second=2, screen=False) as live:
        while not stop.wait(0.5):
            live.update(render(pipeline, api))
            if deadline is not None and time.monotonic() >= deadline:
                return
