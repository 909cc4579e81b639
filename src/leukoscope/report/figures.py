"""The report's seaborn figures: training curves (the paper's Figs. 3-4), the F1 heat map, confusion
matrices and ROC curves. Drawn and saved through `leukoscope._plot`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope._plot import new_figure, save_png
from leukoscope.train.curves import PANELS, curves_frame


def wrap(title: str, width: float, fontsize: float = 10.0) -> str:
    """Break a title into lines that fit `width` inches (matplotlib clips, it does not wrap)."""
    import textwrap

    return textwrap.fill(title, max(20, int(width * 72 / (0.58 * fontsize))))


def training_curves(histories: Mapping[str, pd.DataFrame], path: str | Path, title: str) -> Path:
    """One backbone, every loss: loss, accuracy, weighted F1 per epoch; validation solid, training dashed."""
    import seaborn as sns

    frames = [curves_frame(h).assign(loss=name) for name, h in histories.items()]
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    fig, axes = new_figure(13.0, 4.0, 1, len(PANELS))
    for ax, (metric, label) in zip(axes, PANELS, strict=True):
        part = long[long["metric"] == metric] if len(long) else long
        if len(part):
            sns.lineplot(
                part,
                x="epoch",
                y="value",
                hue="loss",
                style="split",
                markers=True,
                style_order=["validation", "training"],
                ax=ax,
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if metric != "loss":
            ax.set_ylim(0.0, 1.0)
    fig.suptitle(title)
    return save_png(fig, path)


def heatmap_labels(ours: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Cell text: ours, and below it the paper's value where it publishes one ("88.50\n(paper 90.70)")."""
    labels = pd.DataFrame("", index=ours.index, columns=ours.columns, dtype=object)
    for r in ours.index:
        for c in ours.columns:
            value = ours.at[r, c]
            text = "n/a" if pd.isna(value) else f"{float(value):.2f}"
            published = None if paper is None or c not in paper or r not in paper.index else paper.at[r, c]
            if published is not None and not pd.isna(published):
                text += f"\n(paper {float(published):.2f})"
            labels.at[r, c] = text
    return labels


def f1_heatmap(frame: pd.DataFrame, path: str | Path, title: str, paper: pd.DataFrame | None = None) -> Path:
    """Weighted F1 (%) as a loss x backbone grid; `frame`: rows losses, columns backbones.

    `paper` (same labels) puts the published value under ours in each cell; the colour is ours only, so
    the two are read side by side rather than blended into one scale.
    """
    import seaborn as sns

    width = 2.6 + 1.9 * frame.shape[1]
    fig, ax = new_figure(width, 1.4 + 0.75 * frame.shape[0])
    data = frame.astype(float)
    labels = heatmap_labels(data, paper)
    low = float(np.nanmin(data.to_numpy())) if data.notna().any().any() else 0.0
    sns.heatmap(
        data,
        annot=labels.to_numpy(),
        fmt="",
        annot_kws={"fontsize": 8},
        cmap="viridis",
        vmin=low,
        cbar_kws={"label": "weighted F1 (%), ours"},
        ax=ax,
        mask=data.isna(),
    )
    for i, j in zip(*np.nonzero(data.isna().to_numpy()), strict=True):  # seaborn skips masked cells
        ax.text(j + 0.5, i + 0.5, labels.iat[i, j], ha="center", va="center", fontsize=8, color="grey")
    ax.set_title(wrap(title, width - 1.6))
    ax.set_xlabel("")
    ax.set_ylabel("")
    return save_png(fig, path)


def confusion_grid(
    matrices: Mapping[str, Sequence[Sequence[int]]], class_names: Sequence[str], path: str | Path, title: str
) -> Path:
    """Small multiples, one confusion matrix per model (counts, shaded by share of the true class)."""
    import seaborn as sns

    names = list(matrices)
    cols = min(4, max(1, len(names)))
    rows = -(-len(names) // cols) if names else 1
    fig, axes = new_figure(3.2 * cols, 2.9 * rows, rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, name in zip(axes.ravel(), names, strict=False):
        cm = np.asarray(matrices[name], dtype=float)
        share = np.divide(
            cm, cm.sum(axis=1, keepdims=True), out=np.zeros_like(cm), where=cm.sum(axis=1, keepdims=True) > 0
        )
        ax.set_axis_on()
        sns.heatmap(
            share,
            annot=cm.astype(int),
            fmt="d",
            cmap="Blues",
            vmin=0,
            vmax=1,
            cbar=False,
            xticklabels=class_names,
            yticklabels=class_names,
            ax=ax,
        )
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.suptitle(title)
    return save_png(fig, path)


def roc_curves(
    tables: Mapping[str, pd.DataFrame], positive_class: str, split: str, path: str | Path, title: str
) -> Path:
    """ROC of P(positive) on one split for every model; models without both classes are left out."""
    import seaborn as sns
    from sklearn.metrics import auc, roc_curve

    rows = []
    for name, table in tables.items():
        part = table[(table["split"] == split) & table["ok"].astype(bool) & (table["label"] != "")]
        truth = (part["label"] == positive_class).to_numpy()
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, part[f"p_{positive_class}"].to_numpy(float))
        rows.append(pd.DataFrame({"fpr": fpr, "tpr": tpr, "model": f"{name} (AUC {auc(fpr, tpr):.3f})"}))
    fig, ax = new_figure(7.5, 5.2)
    if rows:
        sns.lineplot(
            pd.concat(rows, ignore_index=True),
            x="fpr",
            y="tpr",
            hue="model",
            estimator=None,
            sort=False,
            ax=ax,
        )
        ax.legend(fontsize=7, loc="lower right")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel(f"true positive rate ({positive_class})")
    ax.set_title(title)
    return save_png(fig, path)


def cv_f1(frame: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Per-fold weighted F1 of every model (points) with mean and std (bars)."""
    import seaborn as sns

    fig, ax = new_figure(8.0, 1.2 + 0.35 * frame["model"].nunique())
    sns.barplot(frame, y="model", x="weighted_f1", errorbar="sd", color="#9ecae1", ax=ax)
    sns.stripplot(frame, y="model", x="weighted_f1", hue="fold", ax=ax, size=5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("weighted F1 (validation fold)")
    ax.set_title(title)
    return save_png(fig, path)


def figures_stage(
    files: Mapping[str, Mapping[str, Any]],
    summary: str | Path,
    out: Mapping[str, str | Path],
    *,
    split: str,
    backbones: list[str],
    losses: list[str],
) -> None:
    """The workflow's figures rule: each backbone's training curves (`out["curves_<backbone>"]`), the F1
    heat map beside the paper's, confusion matrices and ROC curves of every model on `split`.

    `files`: "scores" {split: {model: JSON}}, "histories" {"backbone/loss": history.csv}, "predictions"
    {model: parquet}.
    """
    from leukoscope._io import read_json
    from leukoscope.report import paper
    from leukoscope.report.tables import split_name

    info = read_json(summary)
    scores = {model: read_json(path) for model, path in files["scores"][split].items()}
    where = split_name(info["protocol"], split)
    for b in backbones:
        histories = {loss: pd.read_csv(files["histories"][f"{b}/{loss}"]) for loss in losses}
        training_curves(histories, out[f"curves_{b}"], f"{paper.BACKBONE_LABELS.get(b, b)}: training curves")
    columns = [paper.BACKBONE_LABELS.get(b, b) for b in backbones]
    rows = [paper.LOSS_LABELS.get(loss, loss) for loss in losses]
    ours = [[_f1_pct(scores[f"{b}/{loss}"]) for b in backbones] for loss in losses]
    published = [[paper.published(loss, b).f1 for b in backbones] for loss in losses]
    f1_heatmap(pd.DataFrame(ours, index=rows, columns=columns), out["f1_heatmap"],
               f"weighted F1 (%): ours on the {where}, the paper's on the final test",
               pd.DataFrame(published, index=rows, columns=columns))  # fmt: skip
    classes = list(info["class_names"])
    matrices = {m: s["confusion_matrix"] for m, s in scores.items() if s.get("n", 0)}
    confusion_grid(matrices, classes, out["confusion"], f"confusion matrices, {where}")
    tables = {m: pd.read_parquet(p) for m, p in files["predictions"].items()}
    roc_curves(tables, info.get("positive_class") or classes[-1], split, out["roc"], f"ROC, {where}")


def _f1_pct(record: Mapping[str, Any]) -> float | None:
    return 100.0 * record["weighted_f1"] if record.get("n", 0) else None
