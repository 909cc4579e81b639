"""`leukoscope ensemble`, `calibrate`: stage 7 on the command line (grids and folds: the workflow)."""

from __future__ import annotations

from pathlib import Path

import typer

from leukoscope.cli._common import console, print_json

TTA = typer.Option("none", "--tta", help="Test-time augmentation for scoring: none, flips or d8.")
JSON = typer.Option(False, "--json", help="Print one JSON object on stdout.")
VAL_SPLIT = typer.Option(None, "--val-split", help="Use only this split of --val (e.g. fold_2).")
BOOTSTRAP = typer.Option(0, "--bootstrap", min=0, help="Subject-level bootstrap resamples for CIs (0: none).")
CACHE_DIR = typer.Option(None, "--cache-dir", help="Preprocessing cache folder.")


def ensemble(
    runs: list[Path] = typer.Argument(..., help="Model folders / run directories to combine."),
    val: str = typer.Option(..., "--val", help="VALIDATION data to fit weights/threshold and score on."),
    method: str = typer.Option("mean", "--method", help="mean | weighted | mc-dropout."),
    out: Path = typer.Option(Path("runs/ensemble"), "--out", "-o", help="Folder for ensemble.json + report."),
    objective: str = typer.Option("log-loss", "--objective", help="weighted: log-loss or f1."),
    confidence: str = typer.Option(
        "inverse-variance", "--confidence", help="mc-dropout: inverse-variance or entropy."
    ),
    mc_samples: int = typer.Option(16, "--mc-samples", min=2, help="mc-dropout: passes per member."),
    mc_p: float = typer.Option(
        0.2, "--mc-p", help="mc-dropout: p of the dropout inserted where a model has none."
    ),
    tune_threshold: str = typer.Option(
        "fixed", "--tune-threshold", help="fixed, max-f1 or sensitivity:0.95."
    ),
    val_split: str | None = VAL_SPLIT,
    tta: str = TTA,
    bootstrap: int = BOOTSTRAP,
    cache_dir: str | None = CACHE_DIR,
    as_json: bool = JSON,
) -> None:
    """Combine trained runs into one ensemble spec (ensemble.json) usable wherever a model is."""
    from leukoscope.experiments.ensemble import build_ensemble

    summary = build_ensemble(
        runs, val, out, method=method, objective=objective, confidence=confidence, mc_samples=mc_samples,
        mc_p=mc_p, tta=tta, threshold=tune_threshold, bootstrap=bootstrap, cache_dir=cache_dir,
        val_split=val_split,
    )  # fmt: skip
    if as_json:
        print_json({k: v for k, v in summary.items() if k != "per_subject"})
        return
    for m in summary["members"]:
        console.print(f"member {m['run']}: validation weighted F1 {m['weighted_f1']:.4f}")
    weights = "" if summary["weights"] is None else f", weights {[round(w, 3) for w in summary['weights']]}"
    console.print(
        f"ensemble ({summary['method']}{weights}, threshold {summary['threshold']:.3f}): validation "
        f"weighted F1 {summary['weighted_f1']:.4f} (optimistic: fitted on it)"
    )
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"spec: {summary['spec']}")


def calibrate(
    run_dir: Path = typer.Argument(..., help="A model folder / run directory (with model.keras)."),
    val: str = typer.Option(..., "--val", help="VALIDATION data (never the test set)."),
    tune_threshold: str = typer.Option(
        "fixed", "--tune-threshold", help="fixed, max-f1 or sensitivity:0.95."
    ),
    bins: int = typer.Option(15, "--bins", min=2, help="Equal-width bins for ECE."),
    val_split: str | None = VAL_SPLIT,
    cache_dir: str | None = CACHE_DIR,
    as_json: bool = JSON,
) -> None:
    """Fit temperature scaling (and a threshold) on validation data; store them in the model card."""
    from leukoscope.experiments.calibrate import calibrate_run

    result = calibrate_run(
        run_dir, val, threshold=tune_threshold, n_bins=bins, cache_dir=cache_dir, val_split=val_split
    )
    if as_json:
        print_json(result)
        return
    b, a = result["before"], result["after"]
    console.print(
        f"temperature {result['temperature']:.3f}, threshold {result['threshold']:.3f} (stored in the card)"
    )
    console.print(
        f"ECE {b['ece']:.4f} -> {a['ece']:.4f}, NLL {b['nll']:.4f} -> {a['nll']:.4f} on {result['n']} images"
    )
    console.print(f"reliability diagrams: {Path(result['run_dir']) / 'calibration'}")


def register(app: typer.Typer) -> None:
    app.command("ensemble")(ensemble)
    app.command("calibrate")(calibrate)
