"""`curves.png` of a run: loss, accuracy and weighted F1 per epoch, training vs validation (Figs. 3-4)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leukoscope._plot import new_figure, save_png

PANELS = (("loss", "loss"), ("accuracy", "accuracy"), ("weighted_f1", "weighted F1"))


def curves_frame(history: pd.DataFrame) -> pd.DataFrame:
    """Keras' history columns (loss, val_loss, ...) in long form: epoch (1-based), metric, split, value."""
    rows = []
    for metric, _ in PANELS:
        for split, column in (("training", metric), ("validation", f"val_{metric}")):
            if column in history.columns:
                part = history[["epoch", column]].dropna()
                rows.append(
                    pd.DataFrame(
                        {"epoch": part["epoch"] + 1, "metric": metric, "split": split, "value": part[column]}
                    )
                )
    return (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame(columns=["epoch", "metric", "split", "value"])
    )


def plot_training_curves(history: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """One panel per metric; series that were not logged are simply absent."""
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    long = curves_frame(history)
    fig, axes = new_figure(12.0, 3.8, 1, len(PANELS))
    for ax, (metric, label) in zip(axes, PANELS, strict=True):
        part = long[long["metric"] == metric]
        if len(part):
            sns.lineplot(
                part, x="epoch", y="value", hue="split", style="split", markers=True, dashes=False, ax=ax
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if metric != "loss":
            ax.set_ylim(0, 1.0)
    fig.suptitle(title or "training curves")
    return save_png(fig, path)
