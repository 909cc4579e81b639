"""Tables 1-3 of the paper, ours beside the published numbers, as CSV and Markdown.

Honest about splits: the paper's Table 2 is on C-NMC's final test, whose labels were never published, so
ours is on the labelled preliminary test (or, for data without a test split, on validation), and each
table names the split of every column. Cells the paper does not state read "n/a".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from leukoscope._io import atomic_path, write_text
from leukoscope.experiments import paper

SPLIT_NAMES = {"val": "validation", "test": "preliminary test", "final": "final test"}


def pct(value: float | None) -> float | None:
    return None if value is None else round(100.0 * float(value), 2)


def table1(summary: Mapping[str, Any], augmented: Mapping[str, int]) -> pd.DataFrame:
    """Images per split x class (ours) beside the paper's Table 1."""
    classes = list(summary["class_names"])
    parts = summary["parts"]
    cv = summary["protocol"] == "cv"
    rows: list[tuple[str, str, dict[str, int]]] = []
    train = (
        _add(parts["pool"]["per_class"])
        if cv
        else _add(parts["train"]["per_class"], parts["val"]["per_class"])
    )
    rows.append(("training folds (train + val)", "train", train))
    if not cv:
        rows.append(("  train", "", dict(parts["train"]["per_class"])))
        rows.append(("  val", "", dict(parts["val"]["per_class"])))
    rows.append(("preliminary test (labelled)", "prelim", dict(parts["test"]["per_class"])))
    final_n = parts["final"]["images"]
    rows.append(("final test (no public labels)", "final", {"total": final_n}))
    rows.append(("augmented training set", "augmented", dict(augmented)))
    records = []
    for name, key, counts in rows:
        record: dict[str, Any] = {"split": name}
        for c in classes:
            record[f"ours {c}"] = counts.get(c) if key != "final" else None
        record["ours total"] = counts.get("total", sum(v for k, v in counts.items() if k in classes))
        for c in ("all", "hem", "total"):
            record[f"paper {c}"] = paper.TABLE1.get((key, c)) if key else None
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    counts = [c for c in frame.columns if c != "split"]
    frame[counts] = frame[counts].astype("Int64")  # counts stay whole numbers beside n/a cells
    return frame


def _add(*counts: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + int(v)
    return out


def table2(
    scores: Mapping[str, Mapping[str, Any]],
    backbones: list[str],
    losses: list[str],
    chosen: Mapping[str, str],
) -> tuple[pd.DataFrame, str]:
    """Weighted F1 per loss x backbone + the ensemble; `scores[model][split]` are evaluate's records.

    Ours is on the test split where it has labelled images, else validation; returns (table, split).
    """
    split = "test" if all(scores[m].get("test", {}).get("n", 0) > 0 for m in scores) else "val"
    records = []
    for b in backbones:
        for loss in losses:
            records.append(
                {
                    "backbone": paper.BACKBONE_LABELS.get(b, b),
                    "loss": paper.LOSS_LABELS.get(loss, loss),
                    "ours weighted F1": _f1(scores[f"{b}/{loss}"], split),
                    "paper weighted F1": paper.published(loss, b).f1,
                    "in ensemble": "*" if chosen.get(b) == loss else "",
                }
            )
    records.append(
        {
            "backbone": " + ".join(paper.BACKBONE_LABELS.get(b, b) for b in backbones),
            "loss": "ensemble (best loss per backbone)",
            "ours weighted F1": _f1(scores["ensemble"], split),
            "paper weighted F1": paper.ENSEMBLE.f1,
            "in ensemble": "",
        }
    )
    return pd.DataFrame.from_records(records), split


def _f1(record: Mapping[str, Any], split: str) -> float | None:
    scored = record.get(split, {})
    return pct(scored.get("weighted_f1")) if scored.get("n", 0) else None


def table3(val: Mapping[str, Any]) -> pd.DataFrame:
    """The ensemble on validation: accuracy, precision, recall, F1 (of the positive class) + weighted F1."""
    positive = val.get("positive", {}) if val.get("n", 0) else {}
    ours = {
        "accuracy": pct(val.get("accuracy")) if val.get("n", 0) else None,
        "precision": pct(positive.get("precision")),
        "recall": pct(positive.get("recall")),
        "F1": pct(positive.get("f1")),
        "weighted F1": pct(val.get("weighted_f1")) if val.get("n", 0) else None,
    }
    published = {
        "accuracy": paper.TABLE3.accuracy,
        "precision": paper.TABLE3.precision,
        "recall": paper.TABLE3.recall,
        "F1": paper.TABLE3.f1,
        "weighted F1": None,
    }
    return pd.DataFrame(
        {
            "metric": list(ours),
            "ours (validation)": list(ours.values()),
            "paper (validation)": list(published.values()),
        }
    )


def markdown(frame: pd.DataFrame, title: str, notes: list[str]) -> str:
    """A titled Markdown table; empty cells read n/a."""
    shown = frame.astype(object).where(frame.notna(), "n/a")
    body = shown.to_markdown(index=False, floatfmt=".2f")
    lines = [f"## {title}", "", body, ""]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines).rstrip() + "\n"


def write_table(frame: pd.DataFrame, csv: str | Path, md: str | Path, title: str, notes: list[str]) -> None:
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    write_text(md, markdown(frame, title, notes))


def table2_notes(split: str, n: int, chosen: Mapping[str, str], select: str) -> list[str]:
    picked = ", ".join(
        f"{paper.BACKBONE_LABELS.get(b, b)}: {paper.LOSS_LABELS.get(v, v)}" for b, v in chosen.items()
    )
    return [
        f"Ours: weighted F1 (%) on the {SPLIT_NAMES.get(split, split)} split (n = {n}); "
        "the paper's: on C-NMC's final test, whose labels were never published, "
        "so the columns are not the same test set.",
        f"* = the loss picked for the ensemble on validation {select} only ({picked}); the ensemble averages "
        "the picked models' probabilities.",
        "Later work on C-NMC reports 94.8-95.3 weighted F1 (other protocols).",
    ]
