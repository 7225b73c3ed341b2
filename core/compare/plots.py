"""The comparison's figures, drawn with matplotlib's Agg backend (no display needed).

- `loss_curves.png`: left, train loss per step, one line per variant (the mean over seeds, with
  the min-max band); right, validation loss at the evaluation steps, with the untrained model's
  as step 0 and as a dashed reference line.
- `expert_load.png`: the final-window expert load of one variant, averaged over seeds, as a
  heatmap of adapted layers x experts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: renders to files on machines without a display

import matplotlib.pyplot as plt

from core.compare.results import mean_curve

SMOOTH_ABOVE = 60  # steps; longer curves are shown as a moving average of ~1/30 of their length


def plot_loss_curves(
    runs_by_variant: Mapping[str, Sequence[dict[str, Any]]], untrained_valid_loss: float | None, path: Path
) -> Path:
    """Write `loss_curves.png`; `runs_by_variant` holds the successful runs of each variant."""
    fig, (ax_train, ax_valid) = plt.subplots(1, 2, figsize=(13, 5))
    colors = plt.get_cmap("tab10" if len(runs_by_variant) <= 10 else "tab20")
    smoothed = 1
    for i, (name, runs) in enumerate(runs_by_variant.items()):
        color = colors(i % colors.N)
        train = mean_curve(runs, "train", "train_loss")
        if train["step"]:
            window = max(1, len(train["step"]) // 30) if len(train["step"]) > SMOOTH_ABOVE else 1
            smoothed = max(smoothed, window)
            steps = train["step"][window - 1 :]
            ax_train.plot(steps, _moving_average(train["mean"], window), color=color, label=name, lw=1.4)
            ax_train.fill_between(
                steps, _moving_average(train["min"], window), _moving_average(train["max"], window),
                color=color, alpha=0.15, lw=0,
            )  # fmt: skip
        valid = mean_curve(runs, "eval", "valid_loss")
        if valid["step"]:
            steps, mean, low, high = valid["step"], valid["mean"], valid["min"], valid["max"]
            if untrained_valid_loss is not None:
                steps = [0, *steps]
                mean, low, high = ([untrained_valid_loss, *v] for v in (mean, low, high))
            ax_valid.plot(steps, mean, color=color, marker="o", ms=3, label=name, lw=1.4)
            ax_valid.fill_between(steps, low, high, color=color, alpha=0.15, lw=0)
    if untrained_valid_loss is not None:
        ax_valid.axhline(untrained_valid_loss, color="grey", ls="--", lw=1, label="untrained model")
    ax_train.set_title(
        "train loss (mean over seeds, min-max band)"
        + (f", {smoothed}-step moving average" if smoothed > 1 else "")
    )
    ax_valid.set_title("validation loss (mean over seeds, min-max band)")
    for ax in (ax_train, ax_valid):
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss (nats per answer token)")
        ax.grid(alpha=0.3)
    ax_valid.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_expert_load(load: Mapping[str, Sequence[float]], title: str, path: Path) -> Path:
    """Write `expert_load.png`: rows are adapted layers, columns experts, colour the share of routed slots."""
    names = list(load)
    experts = len(load[names[0]])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * experts + 3), max(3.0, 0.12 * len(names) + 1.5)))
    image = ax.imshow([list(load[n]) for n in names], aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label=f"share of routed slots (uniform = 1/{experts})")
    every = max(1, len(names) // 40)
    ax.set_yticks(range(0, len(names), every))
    ax.set_yticklabels([_short(names[i]) for i in range(0, len(names), every)], fontsize=6)
    ax.set_xticks(range(experts))
    ax.set_xticklabels([str(e) for e in range(experts)], fontsize=7)
    ax.set_xlabel("expert")
    ax.set_ylabel("adapted layer")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over `window` values; the first `window - 1` points are dropped."""
    if window <= 1:
        return list(values)
    total, out = sum(values[: window - 1]), []
    for i in range(window - 1, len(values)):
        total += values[i]
        out.append(total / window)
        total -= values[i - window + 1]
    return out


def _short(name: str) -> str:
    """`model.layers.12.self_attn.q_proj` -> `12.q_proj`."""
    parts = name.split(".")
    digits = [p for p in parts if p.isdigit()]
    return f"{digits[-1]}.{parts[-1]}" if digits else name
