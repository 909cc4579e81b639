"""`leukoscope cv`, `experiment table2|gamma`, `ensemble`, `calibrate`: stage 6 on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from leukoscope.cli._common import console, print_json

experiment_app = typer.Typer(
    help="The paper's experiment grids (Table 2, focal-hinge gamma).", no_args_is_help=True
)

DATA = typer.Option(..., "--data", help="Dataset folder or CSV manifest.")
CONFIG = typer.Option(None, "--config", "-c", help="YAML config (flags win over it).")
TTA = typer.Option("none", "--tta", help="Test-time augmentation for scoring: none, flips or d8.")
JSON = typer.Option(False, "--json", help="Print one JSON object on stdout.")
VAL_SPLIT = typer.Option(None, "--val-split", help="Use only this split of --val (e.g. fold_2).")
BOOTSTRAP = typer.Option(0, "--bootstrap", min=0, help="Subject-level bootstrap resamples for CIs (0: none).")
IMAGE_SIZE = typer.Option(None, "--image-size", min=8)
EPOCHS = typer.Option(None, "--epochs", min=1)
MAX_STEPS = typer.Option(None, "--max-steps-per-epoch", min=1, help="Cap on steps per epoch (smoke runs).")
LIMIT = typer.Option(None, "--limit-per-class", min=1, help="Use at most this many images per class.")
CACHE_DIR = typer.Option(None, "--cache-dir", help="Preprocessing cache folder.")


def _train_flags(**flags: Any) -> dict[str, Any]:
    """Training flags -> dotted RunConfig keys (None: keep the config's value)."""
    from leukoscope.cli.train import _classes, _overrides

    if flags.get("classes") is not None:
        flags["classes"] = _classes(flags["classes"])
    return _overrides(**flags)


def _say(as_json: bool) -> Any:
    return (lambda _msg: None) if as_json else (lambda msg: console.print(f"[cyan]{msg}[/]"))


def cv(
    data: str = DATA,
    folds: int = typer.Option(5, "--folds", "-k", min=2, help="Number of folds (C-NMC: 3 = official)."),
    config: Path | None = CONFIG,
    out: Path = typer.Option(Path("runs/cv"), "--out", "-o", help="Output folder (one run per fold)."),
    backbone: str | None = typer.Option(None, "--backbone"),
    weights: str | None = typer.Option(None, "--weights", help="hub | bundled | none | a file."),
    loss: str | None = typer.Option(None, "--loss"),
    epochs: int | None = EPOCHS,
    image_size: int | None = IMAGE_SIZE,
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    lr: float | None = typer.Option(None, "--lr"),
    classes: str | None = typer.Option(None, "--classes", help="Comma-separated classes, e.g. all,hem."),
    positive_class: str | None = typer.Option(None, "--positive-class", help="Two classes: the sigmoid's."),
    max_steps_per_epoch: int | None = MAX_STEPS,
    seed: int | None = typer.Option(None, "--seed"),
    cache_dir: str | None = CACHE_DIR,
    tta: str = TTA,
    bootstrap: int = BOOTSTRAP,
    as_json: bool = JSON,
) -> None:
    """Subject-grouped K-fold cross-validation: per-fold and mean ± std metrics, OOF predictions, report."""
    from leukoscope.cli._common import build_config
    from leukoscope.experiments.cv import run_cv

    flags = _train_flags(
        data=data, backbone=backbone, weights=weights, loss=loss, epochs=epochs, image_size=image_size,
        batch_size=batch_size, lr=lr, classes=classes, max_steps_per_epoch=max_steps_per_epoch, seed=seed,
        cache_dir=cache_dir,
    )  # fmt: skip
    if positive_class is not None:
        flags["data.positive_class"] = positive_class
    if as_json:
        flags["train.progress"] = False
    summary = run_cv(
        build_config(config, flags), folds, out, tta=tta, bootstrap=bootstrap, progress=_say(as_json)
    )
    if as_json:
        print_json(summary)
        return
    _print_cv(summary)


def _print_cv(s: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{s['k']}-fold cross-validation, {s['n_images']} images")
    for col in ("metric", "mean", "std", *[f"fold {r['fold']}" for r in s["folds"]]):
        table.add_column(col, justify="right")
    for key, mean in s["mean"].items():
        std = s["std"][key]
        cells = [_num(mean), _num(std), *[_num(r.get(key)) for r in s["folds"]]]
        table.add_row(key, *cells)
    console.print(table)
    if not s["subject_known"]:
        console.print(
            "[yellow]note:[/] subjects unknown: each image is its own subject (a patient leak is possible)"
        )
    console.print(f"report: {s['report']}  predictions: {s['predictions']}  ({s['wall_time_s']} s)")


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _grid_config(scale: str, config: Path | None, flags: dict[str, Any]) -> Any:
    from leukoscope.experiments._runs import layered_config
    from leukoscope.experiments.table2 import SCALE_PRESETS, scale_backbones

    scale_backbones(scale)  # validates the scale
    return layered_config(SCALE_PRESETS[scale], config, flags)


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def table2(
    data: str = DATA,
    scale: str = typer.Option("smoke", "--scale", help="smoke (CPU, minutes) or full (GPU reproduction)."),
    config: Path | None = CONFIG,
    out: Path = typer.Option(Path("runs/table2"), "--out", "-o"),
    losses: str | None = typer.Option(
        None, "--losses", help="Subset, e.g. bce,focal_hinge (default: all 5)."
    ),
    backbones: str | None = typer.Option(None, "--backbones", help="Override the scale's two backbones."),
    image_size: int | None = IMAGE_SIZE,
    epochs: int | None = EPOCHS,
    max_steps_per_epoch: int | None = MAX_STEPS,
    limit_per_class: int | None = LIMIT,
    cache_dir: str | None = CACHE_DIR,
    tta: str = TTA,
    as_json: bool = JSON,
) -> None:
    """Five losses x two backbones + their ensemble; Markdown/CSV table beside the paper's numbers."""
    from leukoscope.experiments import paper
    from leukoscope.experiments.table2 import run_grid, scale_backbones, stand_ins_for, table2_cells

    cfg = _grid_config(
        scale,
        config,
        _grid_flags(data, image_size, epochs, max_steps_per_epoch, limit_per_class, cache_dir, as_json),
    )
    chosen = _csv(backbones) or list(scale_backbones(scale))
    cells = table2_cells(chosen, _csv(losses) or list(paper.LOSSES))
    summary = run_grid(
        cfg, cells, out, stand_ins=stand_ins_for(chosen, scale), tta=tta, progress=_say(as_json)
    )
    _print_grid(summary, out, as_json)


def gamma(
    data: str = DATA,
    scale: str = typer.Option("smoke", "--scale", help="smoke (CPU, minutes) or full (GPU)."),
    config: Path | None = CONFIG,
    out: Path = typer.Option(Path("runs/gamma"), "--out", "-o"),
    gammas: str = typer.Option("1,1.5,2,3,4", "--gammas", help="Focal hinge gamma values (> 0.5)."),
    backbones: str | None = typer.Option(None, "--backbones", help="Default: the scale's two backbones."),
    image_size: int | None = IMAGE_SIZE,
    epochs: int | None = EPOCHS,
    max_steps_per_epoch: int | None = MAX_STEPS,
    limit_per_class: int | None = LIMIT,
    cache_dir: str | None = CACHE_DIR,
    tta: str = TTA,
    as_json: bool = JSON,
) -> None:
    """Focal hinge loss with several gamma values on each backbone, scored the same way as Table 2."""
    from leukoscope.errors import ConfigError
    from leukoscope.experiments.table2 import gamma_cells, run_grid, scale_backbones

    try:
        values = [float(g) for g in _csv(gammas) or []]
    except ValueError:
        raise ConfigError(f"--gammas {gammas!r} is not a list of numbers", hint="e.g. 1,1.5,2,3,4") from None
    cfg = _grid_config(
        scale,
        config,
        _grid_flags(data, image_size, epochs, max_steps_per_epoch, limit_per_class, cache_dir, as_json),
    )
    chosen = _csv(backbones) or list(scale_backbones(scale))
    summary = run_grid(
        cfg, gamma_cells(chosen, values), out, kind="gamma", ensemble=False, tta=tta, progress=_say(as_json)
    )
    _print_grid(summary, out, as_json)


def _grid_flags(
    data: str,
    image_size: int | None,
    epochs: int | None,
    max_steps: int | None,
    limit: int | None,
    cache_dir: str | None,
    as_json: bool,
) -> dict[str, Any]:
    flags = _train_flags(
        data=data, image_size=image_size, epochs=epochs, max_steps_per_epoch=max_steps, cache_dir=cache_dir
    )
    if limit is not None:
        flags["data.limit_per_class"] = limit
    if as_json:
        flags["train.progress"] = False
    return flags


def _print_grid(summary: dict[str, Any], out: Path, as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    typer.echo((out / "table.md").read_text(encoding="utf-8"))
    files = f"{out / 'table.md'}, {out / 'table.csv'}, {out / 'report.html'}"
    console.print(f"written: {files} ({summary['wall_time_s']} s)")


def ensemble(
    runs: list[Path] = typer.Argument(..., help="Run directories to combine."),
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
    run_dir: Path = typer.Argument(..., help="A run directory."),
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
    app.command("cv")(cv)
    experiment_app.command("table2")(table2)
    experiment_app.command("gamma")(gamma)
    app.add_typer(experiment_app, name="experiment")
    app.command("ensemble")(ensemble)
    app.command("calibrate")(calibrate)
