"""Tables 1-3 of the paper, ours beside the published numbers, as CSV and Markdown.

Honest about splits: the paper's Table 2 is on C-NMC's final test, whose labels were never published, so
ours is on the labelled preliminary test, and every table names the split of its columns. Under the
`paper` protocol the preliminary test also validated (early stopping, loss and ensemble choice), so its
scores are optimistic, as the paper's Table 3 is; `heldout` scores it untouched. Each score carries its
subject-level bootstrap 95% interval; Table 2 adds each loss's paired difference from BCE. Cells the
paper does not state read "n/a".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope._io import atomic_path, write_text
from leukoscope.report import paper

log = logging.getLogger(__name__)

SPLIT_NAMES = {
    "paper": {"val": "preliminary test (also the validation set)", "final": "final test"},
    "heldout": {"val": "validation (fold_2)", "test": "preliminary test", "final": "final test"},
}
# markdown: "value [low, high]" made from these column pairs (the CSV keeps them as numbers)
CI_COLUMNS = ("95% CI low", "95% CI high")


def pct(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else round(100 * value, 2)


def split_name(protocol: str, split: str) -> str:
    return SPLIT_NAMES.get(protocol, {}).get(split, split)


def table1(summary: Mapping[str, Any], augmented: Mapping[str, int]) -> pd.DataFrame:
    """Images per split x class (ours) beside the paper's Table 1, one row per set the protocol uses."""
    classes = list(summary["class_names"])
    parts = summary["parts"]
    protocol = summary["protocol"]
    rows: list[tuple[str, str, dict[str, int]]] = []
    if protocol == "cv":
        rows.append(("training folds (all folds)", "train", dict(parts["pool"]["per_class"])))
    else:
        held = _add(parts["train"]["per_class"], parts["val"]["per_class"] if protocol == "heldout" else {})
        rows.append(("training folds", "train", held))
        if protocol == "heldout":
            rows.append(("  training (folds but val_fold)", "", dict(parts["train"]["per_class"])))
            rows.append(("  validation (val_fold)", "", dict(parts["val"]["per_class"])))
            rows.append(("preliminary test (labelled)", "prelim", dict(parts["test"]["per_class"])))
        else:
            rows.append(("preliminary test (labelled; validates)", "prelim", dict(parts["val"]["per_class"])))
        rows.append(("final test (no public labels)", "final", {"total": parts["final"]["images"]}))
    rows.append(("augmented training set", "augmented", dict(augmented)))
    records = []
    for name, key, counts in rows:
        record: dict[str, Any] = {"set": name}
        for c in classes:
            record[f"ours {c}"] = counts.get(c) if key != "final" else None
        record["ours total"] = counts.get("total", sum(v for k, v in counts.items() if k in classes))
        for c in ("all", "hem", "total"):
            record[f"paper {c}"] = paper.TABLE1.get((key, c)) if key else None
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    counts_cols = [c for c in frame.columns if c != "set"]
    frame[counts_cols] = frame[counts_cols].astype("Int64")  # counts stay whole numbers beside n/a cells
    return frame


def _add(*counts: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + int(v)
    return out


def _ci(record: Mapping[str, Any], metric: str) -> tuple[float | None, float | None]:
    ci = record.get("ci", {}).get(metric)
    return (pct(ci["low"]), pct(ci["high"])) if ci else (None, None)


def _score(record: Mapping[str, Any], metric: str) -> float | None:
    if not record.get("n", 0):
        return None
    if metric == "positive_f1":
        return pct(record.get("positive", {}).get("f1"))
    return pct(record.get(metric))


def _seed_stats(record: Mapping[str, Any], metric: str) -> tuple[float | None, float | None]:
    values = [s.get(metric) for s in record.get("per_seed", {}).values() if s.get(metric) is not None]
    if len(values) < 2:
        return None, None
    return pct(float(np.mean(values))), pct(float(np.std(values, ddof=1)))


def table2(
    scores: Mapping[str, Mapping[str, Any]],
    backbones: list[str],
    losses: list[str],
    chosen: Mapping[str, str],
    split: str,
    differences: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Weighted F1 and F1 of the positive class (ALL) per loss x backbone + the ensemble, on `split`.

    `scores[model][split]` are evaluate's records (with `ci`, and `per_seed` for several seeds);
    `differences[model]` the paired weighted-F1 difference from the same backbone's BCE.
    """
    differences = differences or {}
    multi_seed = any(len(s.get(split, {}).get("per_seed", {})) > 1 for s in scores.values())
    records = []
    names = [(b, loss, f"{b}/{loss}") for b in backbones for loss in losses]
    names.append((None, "ensemble", "ensemble"))
    for b, loss, model in names:
        record = scores[model].get(split, {})
        low, high = _ci(record, "weighted_f1")
        pos_low, pos_high = _ci(record, "positive_f1")
        diff = differences.get(model)
        row: dict[str, Any] = {
            "backbone": paper.BACKBONE_LABELS.get(b, b)
            if b
            else " + ".join(paper.BACKBONE_LABELS.get(x, x) for x in backbones),
            "loss": paper.LOSS_LABELS.get(loss, loss) if b else "ensemble (best loss per backbone)",
            "ours weighted F1": _score(record, "weighted_f1"),
            "weighted F1 95% CI low": low,
            "weighted F1 95% CI high": high,
            "paper weighted F1": paper.published(loss, b).f1 if b else paper.ENSEMBLE.f1,
            "vs BCE (paired)": pct(diff["point"]) if diff else None,
            "vs BCE 95% CI low": pct(diff["low"]) if diff else None,
            "vs BCE 95% CI high": pct(diff["high"]) if diff else None,
            "ours ALL F1": _score(record, "positive_f1"),
            "ALL F1 95% CI low": pos_low,
            "ALL F1 95% CI high": pos_high,
            "paper ALL F1": None,  # the paper's Table 2 gives weighted F1 only
            "in ensemble": "*" if b and chosen.get(b) == loss else "",
        }
        if multi_seed:
            row["seeds mean"], row["seeds std"] = _seed_stats(record, "weighted_f1")
        records.append(row)
    return pd.DataFrame.from_records(records)


def table3(record: Mapping[str, Any], column: str) -> pd.DataFrame:
    """The ensemble on the preliminary test: accuracy, precision, recall, F1 of the positive class (ALL)."""
    metrics = [
        ("accuracy", "accuracy", paper.TABLE3.accuracy),
        ("precision (ALL)", "positive_precision", paper.TABLE3.precision),
        ("recall (ALL)", "positive_recall", paper.TABLE3.recall),
        ("F1 (ALL)", "positive_f1", paper.TABLE3.f1),
        ("weighted F1", "weighted_f1", None),
    ]
    positive = record.get("positive", {}) if record.get("n", 0) else {}
    point = {
        "accuracy": record.get("accuracy"),
        "weighted_f1": record.get("weighted_f1"),
        "positive_precision": positive.get("precision"),
        "positive_recall": positive.get("recall"),
        "positive_f1": positive.get("f1"),
    }
    rows = []
    for label, key, published in metrics:
        low, high = _ci(record, key)
        value = pct(point[key]) if record.get("n", 0) else None
        rows.append({"metric": label, column: value, CI_COLUMNS[0]: low, CI_COLUMNS[1]: high,
                     "paper": published})  # fmt: skip
    return pd.DataFrame.from_records(rows)


def with_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    """For Markdown: each '<x>' column followed by '<x...> 95% CI low/high' becomes 'x [low, high]'."""
    shown = frame.copy().astype(object)
    columns = list(frame.columns)
    for i, name in enumerate(columns):
        if i + 2 >= len(columns) or not (
            columns[i + 1].endswith("95% CI low") and columns[i + 2].endswith("95% CI high")
        ):
            continue
        low, high = frame[columns[i + 1]], frame[columns[i + 2]]
        shown[name] = [
            "n/a" if pd.isna(v) else f"{v:.2f}" + ("" if pd.isna(lo) else f" [{lo:.2f}, {hi:.2f}]")
            for v, lo, hi in zip(frame[name], low, high, strict=True)
        ]
        shown = shown.drop(columns=[columns[i + 1], columns[i + 2]])
    return shown


def markdown(frame: pd.DataFrame, title: str, notes: list[str]) -> str:
    """A titled Markdown table; empty cells read n/a; intervals beside their values."""
    shown = with_intervals(frame)
    shown = shown.where(shown.notna(), "n/a")
    body = shown.to_markdown(index=False, floatfmt=".2f")
    lines = [f"## {title}", "", body, ""]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines).rstrip() + "\n"


def write_table(frame: pd.DataFrame, csv: str | Path, md: str | Path, title: str, notes: list[str]) -> None:
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    write_text(md, markdown(frame, title, notes))


def interpretation_notes(losses: Mapping[str, Mapping[str, Any]], protocol: str) -> list[str]:
    """What this run chose where the paper is silent or ambiguous (config.yaml says how to change each)."""
    notes = []
    on = {name: losses.get(name, {}).get("on", "logit") for name in ("hinge", "focal_hinge")}
    if any(v == "sigmoid" for v in on.values()):
        notes.append(
            "Hinge and focal hinge on the sigmoid output p, as the paper ran them in Keras (a negative "
            "never reaches zero loss); `losses: {hinge: {on: logit}}` is the well-posed variant."
        )
    else:
        notes.append("Hinge and focal hinge on the logit (not the paper's Keras set-up on the sigmoid).")
    counts = losses.get("weighted_bce", {}).get("counts", "original")
    notes.append(
        f"Weighted BCE: W_i = N / (c n_i) from the {counts} training set's class counts"
        + (
            " (before oversampling; the augmented 10,778 / 9,272 would give 0.93 / 1.08, nearly plain BCE)"
            if counts == "original"
            else ""
        )
        + "; `losses: {weighted_bce: {counts: "
        + ("augmented" if counts == "original" else "original")
        + "}}` is the other reading."
    )
    notes.append(
        "Not in the paper: early stopping on validation weighted F1, choosing each backbone's loss on "
        "validation, and averaging the chosen networks' probabilities (the paper says its ensemble uses "
        "'the best results' of the two models)."
    )
    if protocol == "paper":
        notes.append(
            "Protocol paper: the preliminary test is also the validation set (early stopping, loss and "
            "ensemble choice), so its scores are optimistic; `protocol: heldout` validates on fold_2 and "
            "scores the preliminary test untouched."
        )
    return notes


def table2_notes(protocol: str, split: str, n: int, chosen: Mapping[str, str], select: str,
                 bootstrap: Mapping[str, Any] | None) -> list[str]:  # fmt: skip
    picked = ", ".join(
        f"{paper.BACKBONE_LABELS.get(b, b)}: {paper.LOSS_LABELS.get(v, v)}" for b, v in chosen.items()
    )
    notes = [
        f"Ours: on the {split_name(protocol, split)} (n = {n}); the paper's: on C-NMC's final test, whose "
        "labels were never published, so the columns are not the same test set. ALL F1: F1 of the ALL "
        "class (the paper's Table 2 gives weighted F1 only).",
        f"* = the loss picked for the ensemble on validation {select} ({picked}).",
        "vs BCE: our weighted F1 minus the same backbone's BCE on the same images, with its paired "
        "bootstrap interval; an interval that holds 0 does not support a difference (the paper reports "
        "focal hinge 1-5 points above the other losses).",
    ]
    if bootstrap:
        notes.append(
            f"95% intervals: {bootstrap.get('resamples')} bootstrap resamples of whole "
            f"{bootstrap.get('unit')}s ({bootstrap.get('n_units')}), stratified by class, seed "
            f"{bootstrap.get('seed')}."
        )
    notes.append("Later work on C-NMC reports 94.8-95.3 weighted F1 (other protocols).")
    return notes


def write_paper_tables(
    summary: Mapping[str, Any],
    choice: Mapping[str, Any],
    scores: Mapping[str, Mapping[str, Any]],
    predictions: Mapping[str, pd.DataFrame],
    augmented: Mapping[str, int],
    out: Mapping[str, str | Path],
    *,
    split: str,
    backbones: list[str],
    losses: list[str],
    loss_settings: Mapping[str, Mapping[str, Any]],
    select: str,
    threshold: float,
    bootstrap: int,
    bootstrap_seed: int,
) -> str:
    """Tables 1-3 of a paper / heldout run into `out["table{1,2,3}_{csv,md}"]`; Table 2 as Markdown.

    `scores[model][split]` are evaluate's records, `predictions[model]` the seed-averaged prediction
    tables (for each loss's paired difference from its backbone's BCE on the same images).
    """
    from leukoscope.evaluate.predictions import class_names_of, paired_differences

    protocol, positive = summary["protocol"], summary.get("positive_class")
    interpretations = interpretation_notes(loss_settings, protocol)
    t1 = table1(summary, augmented)
    write_table(t1, out["table1_csv"], out["table1_md"], "Table 1: images per set and class", [
        "Ours: this run's sample sheet (after dropping files identical to one in an earlier split) and "
        "the augment stage's oversampled training set; the paper's: its Table 1 (C-NMC 2019, 73 subjects "
        "in 3 folds; the final test's class counts are the paper's, its labels were never published).",
        f"Augmented: {summary.get('augment', {}).get('reason', '')}.",
        *summary.get("notes", []),
    ])  # fmt: skip
    classes = class_names_of(next(iter(predictions.values())))
    differences: dict[str, Any] = {}
    for b in backbones if "bce" in losses else []:
        group = {f"{b}/{loss}": predictions[f"{b}/{loss}"] for loss in losses}
        differences |= paired_differences(group, f"{b}/bce", split, classes, threshold, positive,
                                          n_boot=bootstrap, seed=bootstrap_seed)  # fmt: skip
    t2 = table2(scores, backbones, losses, choice["chosen"], split, differences)
    ensemble = scores["ensemble"].get(split, {})
    notes = table2_notes(protocol, split, ensemble.get("n", 0), choice["chosen"], select,
                         ensemble.get("bootstrap"))  # fmt: skip
    title = f"Table 2: weighted F1 (%) per loss and backbone, {split_name(protocol, split)}"
    write_table(t2, out["table2_csv"], out["table2_md"], title, [*notes, *interpretations])
    prelim = "val" if protocol == "paper" else "test"
    record, where = scores["ensemble"].get(prelim, {}), split_name(protocol, prelim)
    t3 = table3(record, "ours")
    write_table(t3, out["table3_csv"], out["table3_md"], f"Table 3: the ensemble on the {where}", [
        f"n = {record.get('n', 0)}; precision, recall and F1 of the positive class ({positive}), as in the "
        "paper (its F1 88.82 = the harmonic mean of 82.73 and 95.89); the paper's column is on its "
        "validation set, the preliminary test.",
        *[n for n in interpretations if n.startswith("Protocol paper")],
    ])  # fmt: skip
    return markdown(t2, title, [])


def tables_stage(
    scores: Mapping[str, Mapping[str, str | Path]],
    predictions: Mapping[str, str | Path],
    summary: str | Path,
    choice: str | Path,
    augmented: str | Path,
    metrics: Mapping[str, str | Path],
    out: Mapping[str, str | Path],
    **settings: Any,
) -> str:
    """The workflow's tables rule: `write_paper_tables` (`settings`: its keywords, split to bootstrap_seed)
    of the score files (`scores[split][model]`) and prediction tables, and the timing table of the
    training jobs' metrics.json (`metrics[job]`).

    `out` names `table{1,2,3}_{csv,md}` and `timing_{csv,md}`; returns Table 2 as Markdown.
    """
    from leukoscope._io import read_json
    from leukoscope.report.timing import timing_notes, timing_table

    records: dict[str, dict[str, Any]] = {}
    for name, files in scores.items():
        for model, path in files.items():
            records.setdefault(model, {})[name] = read_json(path)
    counts = pd.read_parquet(augmented)["label"].value_counts().to_dict()
    table2 = write_paper_tables(
        read_json(summary), read_json(choice), records,
        {m: pd.read_parquet(f) for m, f in predictions.items()},
        {str(k): int(v) for k, v in counts.items()}, out, **settings,
    )  # fmt: skip
    title = "Training time per job: first step (trace / compile) and steady images/s"
    write_table(timing_table(dict(metrics)), out["timing_csv"], out["timing_md"], title, timing_notes())
    log.info("%s", table2)
    return table2
