"""Plots of cross-validated predictions: PR curve, reliability, per session (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from volatility.scoring.quality import pr_curve, reliability

_METADATA = {"Software": None}  # keep the PNGs free of version strings


def plot_pr(labels: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=80)
    for name, p in scores.items():
        recall, precision = pr_curve(labels, p)
        first = precision[0] if len(precision) else 1.0
        ax.step(np.r_[0.0, recall], np.r_[first, precision], where="post", label=name)
    ax.axhline(float(labels.mean()), color="grey", linestyle=":", label="prevalence")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title("precision-recall, sessions unseen (pooled)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, metadata=_METADATA)
    plt.close(fig)


def plot_calibration(labels: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=80)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for name, p in scores.items():
        points = reliability(labels, p)
        ax.plot([q for q, _, _ in points], [r for _, r, _ in points], marker="o", label=name)
    ax.set(xlabel="mean predicted spike probability", ylabel="observed spike rate")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.set_title("calibration, sessions unseen (10 bins)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, metadata=_METADATA)
    plt.close(fig)


def plot_sessions(per_session: dict[str, dict[str, Any]], models: list[str], path: Path) -> None:
    """Within-session PR-AUC of each model beside the session's spike rate, one group a bar set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(per_session)
    x = np.arange(len(groups))
    width = 0.8 / (len(models) + 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(groups) + 2), 4), dpi=80)
    prevalence = [per_session[g]["prevalence"] for g in groups]
    ax.bar(x, prevalence, width, color="grey", label="spike rate")
    for k, name in enumerate(models):
        values = [per_session[g]["models"][name]["pr_auc"] for g in groups]
        heights = [v if v is not None and v == v else 0.0 for v in values]
        ax.bar(x + (k + 1) * width, heights, width, label=name)
    ax.set_xticks(x + width * len(models) / 2)
    # "<file> <product>": the session's start stamp over the product
    labels = [f"{g[:16]}\n{g.rsplit(' ', 1)[-1]}" for g in groups]
    ax.set_xticklabels(labels, fontsize=6)
    ax.set(ylabel="PR-AUC within the session", ylim=(0, 1))
    ax.set_title("per session and product, sessions unseen")
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, metadata=_METADATA)
    plt.close(fig)
