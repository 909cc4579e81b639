"""`leukoscope train`: fine-tune a backbone on a dataset; config file + flags (flags win), or --resume.

The options named after a RunConfig field set it (`cli.train_config`); everything else is `train.fit`'s.
"""

from __future__ import annotations

from pathlib import Path

import typer

from leukoscope.cli._common import console


def train(
    data: str | None = typer.Option(None, "--data", help="Training dataset folder or CSV manifest."),
    val: str | None = typer.Option(
        None, "--val", help="A separate validation dataset (default: held-out subjects)."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="configs/cpu-fast.yaml, or the workflow's config.yaml (its first grid job).",
    ),
    backbone: str | None = typer.Option(
        None, "--backbone", help="Any keras.applications model (densenet201, efficientnetb2, ...)."
    ),
    weights: str | None = typer.Option(
        None, "--weights", help="imagenet | none | Keras' notop .h5 | .keras / .weights.h5 | a model folder."
    ),
    loss: str | None = typer.Option(None, "--loss", help="bce, weighted_bce, focal, hinge, focal_hinge, ..."),
    epochs: int | None = typer.Option(None, "--epochs", min=1),
    image_size: int | None = typer.Option(None, "--image-size", min=8),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate."),
    recipe: str | None = typer.Option(
        None, "--recipe", help="auto (scratch for --weights none) | paper (as configured) | scratch."
    ),
    out: str | None = typer.Option(None, "--out", "-o", help="Run directory (default runs/latest)."),
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue a run directory from its last complete epoch."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run already in --out."),
    devices: str | None = typer.Option(
        None,
        "--devices",
        help="auto (all GPUs, mirrored), gpu (the same, one required), a count (2), GPU ids (0,1), cpu, "
        "or cpu:N.",
    ),
    accelerator: str | None = typer.Option(
        None, "--accelerator", help="The old name of --devices: auto | cpu | gpu (every GPU, at least one)."
    ),
    seed: int | None = typer.Option(None, "--seed"),
    precision: str | None = typer.Option(
        None,
        "--precision",
        help="auto | fp32 | bf16 (mixed_bfloat16) | fp16 (mixed_float16, GPU); 32 / 16: old names. auto: "
        "fp32 on CPUs (bf16 measured no faster there), bf16 on GPUs from compute capability 8, fp16 on 7.x.",
    ),
    balance: str | None = typer.Option(None, "--balance", help="none, oversample, class_weight."),
    patience: int | None = typer.Option(None, "--patience", min=1, help="Early stopping on val weighted F1."),
    num_workers: int | None = typer.Option(None, "--num-workers", min=0),
    val_fold: int | None = typer.Option(
        None, "--val-fold", help="C-NMC: the official fold used for validation."
    ),
    classes: str | None = typer.Option(
        None, "--classes", help="Comma-separated classes to keep, e.g. all,hem."
    ),
    max_steps_per_epoch: int | None = typer.Option(None, "--max-steps-per-epoch", min=1),
    state_dir: str | None = typer.Option(
        None, "--state-dir", help="Where the resume state lives (default: <out>.state)."
    ),
    run_eagerly: bool = typer.Option(
        False, "--run-eagerly", help="No graph tracing: faster for a dozen steps, slower for long runs."
    ),
    cache_dir: str | None = typer.Option(None, "--cache-dir", help="Preprocessing cache folder."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (logs only)."),
    deterministic: bool = typer.Option(
        False, "--deterministic", help="Deterministic algorithms: repeatable runs, somewhat slower."
    ),
) -> None:
    """Fine-tune a classifier; writes a run directory with the best model, curves and metrics."""
    flags = dict(locals())  # first: exactly the options, by parameter name
    from leukoscope.cli.train_config import build_config, overrides
    from leukoscope.train.fit import fit, resumed_config

    flags |= {
        "classes": [c.strip() for c in classes.split(",") if c.strip()] if classes else None,
        "devices": _devices(devices, accelerator),
        "progress": False if no_progress else None,
        "deterministic": deterministic or None,
        "run_eagerly": run_eagerly or None,
    }
    settings = overrides(flags)
    if resume is not None:
        cfg = resumed_config(resume, settings)
    else:
        notices: list[str] = []
        cfg = build_config(config, settings, notices)
        for line in notices:
            console.print(f"[yellow]{line}[/]")
    _summary(fit(cfg, resume=resume, overwrite=overwrite))


def _devices(devices: str | None, accelerator: str | None) -> str | None:
    """--accelerator (the PyTorch-era name) read as --devices, with a notice; --devices wins."""
    if accelerator is None or devices is not None:
        return devices
    value = "gpu" if accelerator == "cuda" else accelerator
    console.print(f"[yellow]--accelerator is now --devices (read as --devices {value})[/]")
    return value


def _summary(run_dir: Path) -> None:
    import json

    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    console.print(f"[bold green]run finished:[/] {run_dir}")
    if metrics:
        console.print(
            f"validation (best epoch {metrics.get('epoch', '?')}): weighted F1 {metrics['weighted_f1']:.4f}, "
            f"accuracy {metrics['accuracy']:.4f}, n {metrics['n']}"
        )
    console.print(f"model: {run_dir / 'model.keras'}  curves: {run_dir / 'curves.png'}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
