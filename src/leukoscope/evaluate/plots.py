"""PNG figures of an evaluation: confusion matrix, ROC curves, reliability diagram.

Drawn and saved through `leukoscope._plot` (matplotlib's object API on Agg, atomic writes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from leukoscope._plot import new_figure, save_png


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]] | np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """Counts with row-normalised shading, so a minority class's errors stay visible."""
    cm = np.asarray(matrix, dtype=np.int64)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    side = 2.2 + 0.6 * len(class_names)
    fig, ax = new_figure(side + 1.0, side)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of true class")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45 if len(class_names) > 3 else 0)
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    for i in ticks:
        for j in ticks:
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(
                j, i, f"{cm[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", color=colour, fontsize=8
            )
    return save_png(fig, path)


def plot_roc(
    y_true: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    positive_class: str | None = None,
    title: str = "",
) -> Path:
    """Two classes: one curve for P(positive); N classes: one-vs-rest per class present."""
    from sklearn.metrics import auc, roc_curve

    y = np.asarray(y_true)
    probs = np.asarray(probs)
    fig, ax = new_figure(5.0, 4.6)
    if len(class_names) == 2:
        pos = list(class_names).index(positive_class) if positive_class else 1
        curves = [(class_names[pos], y == pos, probs[:, pos])]
    else:
        curves = [(name, y == i, probs[:, i]) for i, name in enumerate(class_names)]
    for name, truth, score in curves:
        if truth.all() or not truth.any():
            continue  # ROC is undefined without both positives and negatives
        fpr, tpr, _ = roc_curve(truth, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title or "ROC")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    return save_png(fig, path)


def evaluation_figures(
    plots_dir: Path,
    y: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    positive_class: str | None,
    threshold: float,
    title: str = "",
) -> dict[str, Path]:
    """Confusion matrix, ROC and reliability diagram PNGs (written to `plots_dir`)."""
    from sklearn.metrics import confusion_matrix

    from leukoscope.evaluate.calibration import reliability_diagram
    from leukoscope.evaluate.metrics import decide

    pos = list(class_names).index(positive_class) if positive_class else 1
    pred = decide(probs, threshold, pos)
    cm = confusion_matrix(y, pred, labels=list(range(len(class_names))))
    figures = {
        "confusion matrix": plot_confusion_matrix(cm, class_names, plots_dir / "confusion_matrix.png", title),
        "ROC": plot_roc(y, probs, class_names, plots_dir / "roc.png", positive_class, title),
    }
    reliability_diagram(y, probs, plots_dir / "reliability.png", title=f"{title} reliability".strip())
    figures["reliability diagram"] = plots_dir / "reliability.png"
    return figures
