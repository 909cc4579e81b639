"""Grad-CAM panel: where an ensemble member looked on the scored split's cells, right and wrong per class.

The cells are picked once, from the ensemble's decisions, so every member's panel shows the same cells:
per true class up to k it called right and k it called wrong, most confident first (the ensemble's
probability of the class it called; ties by path), so the panel is deterministic. Each member's map
explains that member's own predicted class on the stored crop it was scored on (`results/crop`), not on a
re-read original. The one part of the report that loads a model; TensorFlow stays in `infer.explain`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope._plot import new_figure, save_png
from leukoscope.errors import DataError, ModelError
from leukoscope.evaluate.metrics import positive_index
from leukoscope.evaluate.predictions import class_names_of, decisions, prob_columns, scored_rows
from leukoscope.report.figures import wrap

log = logging.getLogger(__name__)
OUTCOMES = ("right", "wrong")
TILE = 1.35  # inches per tile (crop + three caption lines)


def pick_cells(
    table: pd.DataFrame,
    split: str,
    per_class: int = 4,
    threshold: float = 0.5,
    positive_class: str | None = None,
) -> pd.DataFrame:
    """Per true class, up to `per_class` cells the ensemble called right and as many it called wrong.

    Columns: path, label, subject, outcome, predicted (the ensemble's call), confidence (its probability
    of that call), p_positive (two classes), rank; ordered class, right before wrong, rank.
    """
    classes = class_names_of(table)
    part = scored_rows(table, split, classes).reset_index(drop=True)
    called = decisions(part, classes, threshold, positive_class)
    probs = part[prob_columns(classes)].to_numpy(np.float64)
    cells = pd.DataFrame(
        {
            "path": part["path"].astype(str),
            "label": part["label"].astype(str),
            "subject": part["subject"].astype(str),
            "predicted": [classes[i] for i in called],
            "confidence": probs[np.arange(len(part)), called] if len(part) else np.zeros(0),
        }
    )
    cells["outcome"] = np.where(cells["label"] == cells["predicted"], "right", "wrong")
    if len(classes) == 2:
        cells["p_positive"] = probs[:, positive_index(classes, positive_class)] if len(part) else []
    cells["class_order"] = [classes.index(c) for c in cells["label"]]
    cells = cells.sort_values(
        ["class_order", "outcome", "confidence", "path"], ascending=[True, True, False, True]
    )
    cells = cells.groupby(["class_order", "outcome"], sort=False).head(per_class).copy()
    cells["rank"] = cells.groupby(["class_order", "outcome"]).cumcount()
    return cells.drop(columns="class_order").reset_index(drop=True)


def crops_of(index: pd.DataFrame, images: np.ndarray, paths: Sequence[str]) -> np.ndarray:
    """The stored crops of `paths` from a crop part (`results/crop/<part>.npy` + its index table)."""
    rows = index[index["ok"].astype(bool)].drop_duplicates("path").set_index("path")["row"]
    missing = [p for p in paths if p not in rows.index]
    if missing:
        raise DataError(
            f"{len(missing)} of the panel's images are not among the cropped images (first: {missing[0]})",
            hint="pass the crop part that holds the split (val/pool, test or final)",
        )
    return np.asarray(images[rows.loc[list(paths)].to_numpy(np.int64)])


def panel_shape(class_names: Sequence[str], per_class: int) -> tuple[int, int]:
    """(rows, columns) of the grid: class x (right, wrong) rows, `per_class` columns."""
    return 2 * len(class_names), max(1, per_class)


def panel_size(class_names: Sequence[str], per_class: int) -> tuple[float, float]:
    """The figure's (width, height) in inches: a title line above the tiles."""
    rows, cols = panel_shape(class_names, per_class)
    return 0.9 + TILE * cols, 0.7 + TILE * rows


def caption(
    cell: Any, explained: str, probs: Sequence[float], class_names: Sequence[str], positive_class: str | None
) -> str:
    """Three short lines: the truth, the member's probability and call, the ensemble's."""
    if len(class_names) == 2:
        pos = class_names[positive_index(class_names, positive_class)]
        member = probs[class_names.index(pos)]
        ensemble = cell["p_positive"]
        return f"true {cell['label']}\nP({pos}) {member:.2f} -> {explained}\nensemble {ensemble:.2f}"
    member = probs[class_names.index(explained)]
    return (
        f"true {cell['label']}\n-> {explained} ({member:.2f})\n"
        f"ensemble -> {cell['predicted']} ({cell['confidence']:.2f})"
    )


def draw_panel(
    cells: pd.DataFrame,
    images: np.ndarray,
    cams: np.ndarray,
    captions: Sequence[str],
    class_names: Sequence[str],
    per_class: int,
    path: str | Path,
    title: str,
) -> Path:
    """The grid PNG: one row per class x outcome (an empty row says so), each tile crop + heatmap."""
    rows, cols = panel_shape(class_names, per_class)
    width, height = panel_size(class_names, per_class)
    fig, axes = new_figure(width, height, rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for r, (name, outcome) in enumerate((c, o) for c in class_names for o in OUTCOMES):
        axes[r, 0].set_ylabel(f"{name}\n{outcome}", fontsize=8)
        where = np.flatnonzero((cells["label"] == name).to_numpy() & (cells["outcome"] == outcome).to_numpy())
        if not len(where):
            axes[r, 0].text(0.5, 0.5, f"no {outcome}\ncalls", ha="center", va="center", fontsize=7)
        for c, i in enumerate(where[:cols]):
            ax = axes[r, c]
            ax.imshow(images[i])
            ax.imshow(cams[i], cmap="jet", alpha=0.4, vmin=0.0, vmax=1.0)
            ax.set_title(captions[i], fontsize=6, linespacing=1.1)
    fig.suptitle(wrap(title, width, 9), fontsize=9)
    return save_png(fig, path)


def gradcam_panel(
    model_dir: str | Path,
    cells: pd.DataFrame,
    images: np.ndarray,
    class_names: Sequence[str],
    per_class: int,
    path: str | Path,
    title: str,
    positive_class: str | None = None,
) -> pd.DataFrame:
    """Explain `cells` (from `pick_cells`, crops in the same order) with one member; write the panel.

    `positive_class` (two classes) names the class whose probability the captions show (default: the
    card's); pass the one `pick_cells` was given.

    Returns `cells` with the member's call (`member_predicted`) and its probability of that call.
    """
    from leukoscope.infer.explain import GradCamExplainer
    from leukoscope.models.card import load_model

    model, card = load_model(model_dir)
    if list(card.class_names) != list(class_names):
        raise ModelError(
            f"the model's classes {card.class_names} are not the predictions' {list(class_names)}",
            path=model_dir,
        )
    done = GradCamExplainer(model, card).explain_crops(images)
    explained = [card.class_names[i] for i in done.explained]
    positive = positive_class or card.positive_class
    captions = [
        caption(cell, explained[i], done.probs[i], card.class_names, positive)
        for i, (_, cell) in enumerate(cells.iterrows())
    ]
    draw_panel(cells, images, done.cams, captions, card.class_names, per_class, path, title)
    picked = done.probs[np.arange(len(cells)), done.explained] if len(cells) else np.zeros(0)
    return cells.assign(member_predicted=explained, member_confidence=picked)


def gradcam_stage(
    ensemble: str | Path,
    choice: str | Path,
    summary: str | Path,
    model_dirs: Mapping[str, str | Path],
    crop_images: str | Path,
    crop_index: str | Path,
    out: Mapping[str, str | Path],
    *,
    threshold: float,
    per_class: int = 4,
    split: str = "auto",
) -> dict[str, pd.DataFrame]:
    """The workflow's gradcam rule: one panel per chosen member (`out["gradcam_<backbone>"]`), on the
    cells `pick_cells` takes from the ensemble's predictions of the scored split.

    `model_dirs[member]` is the member's model (its first seed); `crop_images` / `crop_index` the crop
    files of the split its cells were scored on. Returns each member's explained cells.
    """
    from leukoscope._io import read_json
    from leukoscope.report import paper
    from leukoscope.report.subjects import scored_split
    from leukoscope.report.tables import split_name

    info = read_json(summary)
    positive = info.get("positive_class")
    table = pd.read_parquet(ensemble)
    classes = class_names_of(table)
    split = scored_split(table, split)
    cells = pick_cells(table, split, per_class, float(threshold), positive)
    images = crops_of(
        pd.read_parquet(crop_index), np.load(crop_images, mmap_mode="r"), cells["path"].tolist()
    )
    where = split_name(info["protocol"], split)
    counts = cells["outcome"].value_counts().to_dict()
    explained = {}
    for member in read_json(choice)["members"]:
        backbone, loss = member.split("/", 1)
        name = f"{paper.BACKBONE_LABELS.get(backbone, backbone)} ({paper.LOSS_LABELS.get(loss, loss)})"
        title = (
            f"Grad-CAM, {name}, {where}: up to {per_class} cells per class the ensemble called right / wrong"
        )
        path = out[f"gradcam_{backbone}"]
        done = gradcam_panel(model_dirs[member], cells, images, classes, per_class, path, title, positive)
        agree = int((done["member_predicted"] == done["predicted"]).sum())
        log.info("%s: %s (%s; the member agrees with the ensemble on %d/%d)", member, path, counts, agree,
                 len(done))  # fmt: skip
        explained[member] = done
    return explained
