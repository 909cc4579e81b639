"""`leukoscope evaluate RUN_DIR`: score a trained model on a labelled split (weighted F1 first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from leukoscope.cli._common import console, print_json
from leukoscope.cli.infer import BACKEND_HELP, COMPILE_HELP, PRECISION_HELP

SUMMARY_KEYS = ("weighted_f1", "accuracy", "balanced_accuracy", "roc_auc", "subject_majority_accuracy")


def evaluate(
    run_dir: Path = typer.Argument(
        ..., help="A model folder / run directory, an ensemble spec (ensemble.json) or an export."
    ),
    data: str | None = typer.Option(None, "--data", help="Dataset to read the split from."),
    split: str | None = typer.Option(
        None, "--split", help="prelim, fold_0, ... (the data's own), val / train / test (the run's), or all."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (default RUN_DIR/eval-<split>)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    tta: str = typer.Option("none", "--tta", help="Test-time augmentation: none, flips or d8."),
    bootstrap: int = typer.Option(
        0, "--bootstrap", min=0, help="Subject-level bootstrap resamples for CIs of weighted F1 and AUC."
    ),
    backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling."),
    compile: bool = typer.Option(False, "--compile", help=COMPILE_HELP),
    cache_dir: str | None = typer.Option(None, "--cache-dir", help="Preprocessing cache folder."),
) -> None:
    """Write metrics.json, report.html, predictions.csv and the confusion / ROC / reliability plots."""
    from leukoscope.evaluate.run import evaluate_model
    from leukoscope.infer.loading import check_backend

    check_backend(backend)
    metrics = evaluate_model(
        run_dir, data, split, out, cache_dir=cache_dir, precision=precision, batch_size=batch_size,
        progress=not as_json, tta=tta, bootstrap=bootstrap, backend=backend, seed=seed, compile=compile,
    )  # fmt: skip
    if as_json:
        print_json({k: v for k, v in metrics.items() if k not in ("per_subject",)})
        return
    print_summary(metrics)


def print_summary(metrics: dict[str, Any]) -> None:
    from rich.table import Table

    from leukoscope.evaluate.bootstrap import format_ci

    table = Table(title=f"{metrics['split']} split: {metrics['n']} images", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SUMMARY_KEYS:
        value = metrics.get(key)
        table.add_row(key, "n/a" if value is None else f"{value:.4f}")
    table.add_row("ECE (top-label)", f"{metrics['calibration']['ece']:.4f}")
    for key, ci in (metrics.get("bootstrap") or {}).items():
        table.add_row(f"{key} {100 * ci['level']:.0f}% CI (x100)", format_ci(ci))
    console.print(table)
    overlap = metrics.get("training_overlap") or {}
    if overlap.get("files") or overlap.get("subjects"):
        console.print(
            f"[bold yellow]warning:[/] {overlap['files']} files / {overlap['subjects']} subjects of this "
            "split were in training: this is not a held-out score"
        )
    console.print(f"outputs: {metrics['out']} (open report.html)")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
