"""PR curve and reliability plots of walk-forward predictions (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from volatility_training.metrics import pr_curve, reliability

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
    ax.set_title("walk-forward precision-recall (pooled folds)")
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
    ax.set_title("walk-forward calibration (10 bins)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, metadata=_METADATA)
    plt.close(fig)
