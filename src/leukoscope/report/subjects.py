"""Accuracy and errors per subject (patient) for the ensemble and each of its members, worst first.

Cells of one patient are not independent: a model that looks good per cell can still fail whole patients,
and a per-cell score hides which ones. Where the data names no subject (`subject_known` false), every image
would be its own one-image "subject"; such images are grouped by their class instead, and the table says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from leukoscope.errors import DataError
from leukoscope.evaluate.metrics import label_indices, positive_index
from leukoscope.evaluate.predictions import class_names_of, decisions, scored_rows

log = logging.getLogger(__name__)
PREFERRED = ("test", "val")  # the scored split: the labelled preliminary test, else validation


def scored_split(table: pd.DataFrame, split: str = "auto") -> str:
    """`split` itself, or for "auto" the first of test, val with labelled readable images (as Table 2)."""
    if split != "auto":
        return split
    classes = class_names_of(table)
    for candidate in PREFERRED:
        if len(scored_rows(table, candidate, classes)):
            return candidate
    return PREFERRED[-1]


def _aligned(table: pd.DataFrame, name: str, split: str, paths: pd.Series) -> pd.DataFrame:
    part = table[table["split"] == split].drop_duplicates("path").set_index("path")
    missing = int((~paths.isin(part.index)).sum())
    if missing:
        raise DataError(
            f"{name}'s predictions lack {missing} of the ensemble's {split} images",
            hint="rerun that model's predict job and the ensemble",
        )
    return part.loc[paths.to_numpy()].reset_index()


def subject_table(
    ensemble: pd.DataFrame,
    members: Mapping[str, pd.DataFrame],
    split: str,
    threshold: float = 0.5,
    positive_class: str | None = None,
    where: str | None = None,
) -> tuple[pd.DataFrame, str, list[str]]:
    """(table, title, notes): per subject its class, images, and per model errors and accuracy (%).

    Models are the ensemble first, then `members` (name -> its prediction table), scored on the
    ensemble's labelled readable images of `split`. Sorted worst first: lowest ensemble accuracy, then
    most ensemble errors, then subject. `ensemble vote` is the class most of a subject's cells were
    called (a subject-level call); it is empty for rows that group images without a subject.
    """
    classes = class_names_of(ensemble)
    part = scored_rows(ensemble, split, classes).reset_index(drop=True)
    truth = label_indices(part["label"].to_numpy(str), classes)
    models = {"ensemble": part} | {m: _aligned(t, m, split, part["path"]) for m, t in members.items()}
    known = part["subject_known"].astype(bool).to_numpy()
    key = np.where(known, part["subject"].astype(str), "no subject ID (" + part["label"].astype(str) + ")")
    long = pd.DataFrame({"subject": key, "known": known, "label": part["label"].to_numpy(str)})
    for name, table in models.items():
        long[name] = decisions(table, classes, threshold, positive_class)
    rows = []
    for subject, group in long.groupby("subject", sort=True):
        n = len(group)
        row: dict[str, object] = {
            "subject": subject,
            "class": "/".join(sorted(set(group["label"]))),
            "images": n,
        }
        right = {m: int((group[m].to_numpy() == truth[group.index]).sum()) for m in models}
        row["ensemble correct"] = right["ensemble"]
        for m in models:
            row[f"{m} errors"] = n - right[m]
            row[f"{m} accuracy (%)"] = round(100.0 * right[m] / n, 2)
            if m == "ensemble":
                votes = np.bincount(group[m].to_numpy(), minlength=len(classes))
                row["ensemble vote"] = classes[int(votes.argmax())] if group["known"].all() else None
        rows.append(row)
    columns = ["subject", "class", "images", "ensemble correct"]
    for m in models:
        columns += [f"{m} errors", f"{m} accuracy (%)"] + (["ensemble vote"] if m == "ensemble" else [])
    frame = pd.DataFrame.from_records(rows, columns=columns)
    if len(frame):
        frame = frame.sort_values(
            ["ensemble accuracy (%)", "ensemble errors", "subject"], ascending=[True, False, True]
        ).reset_index(drop=True)
    counts = [c for c in columns if c.endswith("errors") or c in ("images", "ensemble correct")]
    frame[counts] = frame[counts].astype("int64")
    where = where or f"{split} split"
    notes = _notes(ensemble, part, split, known, list(members), threshold, classes, positive_class, where)
    return frame, _title(where, known), notes


def _title(where: str, known: np.ndarray) -> str:
    if len(known) and not known.any():
        return f"Accuracy per class on the {where} (no subject IDs in the data)"
    return f"Accuracy per subject on the {where}, worst first"


def _notes(
    ensemble: pd.DataFrame,
    part: pd.DataFrame,
    split: str,
    known: np.ndarray,
    members: list[str],
    threshold: float,
    classes: list[str],
    positive_class: str | None,
    where: str,
) -> list[str]:
    everything = ensemble[ensemble["split"] == split]
    unreadable = int((~everything["ok"].astype(bool)).sum())
    unlabelled = int((everything["label"] == "").sum())
    if part.empty:
        return [f"The {where} has no labelled readable images ({len(everything)} in all): none shown."]
    subjects = part.loc[known, "subject"].nunique()
    if len(classes) == 2:
        positive = classes[positive_index(classes, positive_class)]
        rule = f"{positive} when P({positive}) >= {threshold:g}"
    else:
        rule = "its most probable class"
    notes = [
        f"{where.capitalize()} split: {len(part)} labelled readable images, {subjects} subjects; "
        f"{unreadable} unreadable and {unlabelled} unlabelled images left out.",
        "Models: the ensemble (mean of its members' probabilities)"
        + (f" and its members ({', '.join(members)})" if members else "")
        + f"; a cell is called {rule}. Correct = images - errors.",
        "Worst first: lowest ensemble accuracy, then most ensemble errors. Ensemble vote = the class most "
        "of the subject's cells were called (a subject-level call).",
    ]
    if not known.all():
        notes.append(
            f"{int((~known).sum())} images have no known subject: each would be its own one-image subject, "
            "so they are grouped by class (rows 'no subject ID (<class>)'), without a vote."
        )
    if split == "val":
        notes.append("Validation also chose the ensemble's members, so its scores here are optimistic.")
    return notes


def subjects_stage(
    ensemble: str | Path,
    choice: str | Path,
    summary: str | Path,
    predictions: Mapping[str, str | Path],
    csv: str | Path,
    md: str | Path,
    *,
    threshold: float,
    split: str = "auto",
) -> pd.DataFrame:
    """The workflow's subjects rule: `subject_table` of the ensemble and its chosen members (read from
    `choice` at run time, their tables from `predictions[model]`), written as CSV and Markdown."""
    from leukoscope._io import read_json
    from leukoscope.report.tables import split_name, write_table

    info = read_json(summary)
    table = pd.read_parquet(ensemble)
    scored = scored_split(table, split)
    members = {m: pd.read_parquet(predictions[m]) for m in read_json(choice)["members"]}
    where = split_name(info.get("protocol", ""), scored)
    frame, title, notes = subject_table(
        table, members, scored, float(threshold), info.get("positive_class"), where
    )
    write_table(frame, csv, md, title, notes)
    log.info("%s: %d rows", title, len(frame))
    return frame
