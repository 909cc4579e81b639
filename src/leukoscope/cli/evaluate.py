"""`leukoscope evaluate RUN_DIR`: score a trained model on a labelled split (weighted F1 first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from leukoscope.cli._common import console, print_json

SUMMARY_KEYS = ("weighted_f1", "accuracy", "balanced_accuracy", "roc_auc", "subject_majority_accuracy")


def evaluate(
    run_dir: Path = typer.Argument(
        ..., help="A run directory made by `leukoscope train` (or a model folder)."
    ),
    data: str | None = typer.Option(None, "--data", help="Dataset to read the split from."),
    split: str | None = typer.Option(
        None, "--split", help="prelim, fold_0, ... (the data's own), val / train / test (the run's), or all."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (default RUN_DIR/eval-<split>)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    precision: str = typer.Option("auto", "--precision", help="auto, bf16 or fp32."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    cache_dir: str | None = typer.Option(None, "--cache-dir", help="Preprocessing cache folder."),
) -> None:
    """Write metrics.json, confusion_matrix.png, roc.png and predictions.csv for one split."""
    from leukoscope.evaluate.run import evaluate_model

    metrics = evaluate_model(
        run_dir, data, split, out, cache_dir=cache_dir, precision=precision, batch_size=batch_size,
        progress=not as_json,
    )  # fmt: skip
    if as_json:
        print_json({k: v for k, v in metrics.items() if k not in ("per_subject",)})
        return
    print_summary(metrics)


def print_summary(metrics: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{metrics['split']} split: {metrics['n']} images", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SUMMARY_KEYS:
        value = metrics.get(key)
        table.add_row(key, "n/a" if value is None else f"{value:.4f}")
    console.print(table)
    overlap = metrics.get("training_overlap") or {}
    if overlap.get("files") or overlap.get("subjects"):
        console.print(
            f"[bold yellow]warning:[/] {overlap['files']} files / {overlap['subjects']} subjects of this "
            "split were in training: this is not a held-out score"
        )
    console.print(f"outputs: {metrics['out']}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
