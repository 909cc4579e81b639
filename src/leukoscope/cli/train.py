"""`leukoscope train`: fine-tune a backbone on a dataset; config file + flags (flags win), or --resume."""

from __future__ import annotations

from pathlib import Path

import typer

from leukoscope.cli._common import console


def _overrides(**flags: object) -> dict[str, object]:
    """CLI flag names -> dotted RunConfig keys (None = not given, so the config file's value stays)."""
    keys = {
        "data": "data.data",
        "val": "data.val",
        "val_fold": "data.val_fold",
        "classes": "data.classes",
        "cache_dir": "data.cache_dir",
        "num_workers": "data.num_workers",
        "backbone": "model.backbone",
        "weights": "model.weights",
        "loss": "loss.name",
        "lr": "optim.lr",
        "recipe": "train.recipe",
        "image_size": "preprocess.image_size",
        "epochs": "train.epochs",
        "batch_size": "train.batch_size",
        "precision": "train.precision",
        "balance": "train.balance",
        "patience": "train.patience",
        "seed": "train.seed",
        "devices": "train.devices",
        "max_steps_per_epoch": "train.max_steps_per_epoch",
        "state_dir": "train.state_dir",
        "out": "out",
    }
    return {keys[name]: value for name, value in flags.items() if value is not None}


def _classes(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def train(
    data: str | None = typer.Option(None, "--data", help="Training dataset folder or CSV manifest."),
    val: str | None = typer.Option(
        None, "--val", help="A separate validation dataset (default: held-out subjects)."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config (e.g. configs/paper.yaml)."),
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
        None, "--devices", help="auto (all GPUs, mirrored), a count (2), GPU ids (0,1), cpu, or cpu:N."
    ),
    accelerator: str | None = typer.Option(
        None, "--accelerator", help="auto | cpu (ignore GPUs) | gpu (require one)."
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
    from leukoscope.cli._common import build_config
    from leukoscope.config import RunConfig
    from leukoscope.errors import ConfigError
    from leukoscope.train.fit import fit

    flags = _overrides(
        data=data, val=val, val_fold=val_fold, classes=_classes(classes), cache_dir=cache_dir,
        num_workers=num_workers, backbone=backbone, weights=weights, loss=loss, lr=lr, recipe=recipe,
        image_size=image_size,
        epochs=epochs, batch_size=batch_size, precision=precision, balance=balance, patience=patience,
        seed=seed, devices=_devices(devices, accelerator), max_steps_per_epoch=max_steps_per_epoch,
        state_dir=state_dir, out=out,
    )  # fmt: skip
    if no_progress:
        flags["train.progress"] = False
    if deterministic:
        flags["train.deterministic"] = True
    if run_eagerly:
        flags["train.run_eagerly"] = True
    if resume is not None:
        saved = resume / "config.yaml"
        if not saved.is_file():
            raise ConfigError("no run to resume here (config.yaml missing)", path=resume)
        cfg = RunConfig.from_yaml(saved).override(_resume_flags(flags))
    else:
        cfg = build_config(config, flags)
    run_dir = fit(cfg, resume=resume, overwrite=overwrite)
    _summary(run_dir)


def _devices(devices: str | None, accelerator: str | None) -> str | None:
    """--accelerator in TensorFlow terms: cpu hides the GPUs, gpu insists on one (--devices wins)."""
    from leukoscope.errors import ConfigError

    if accelerator in (None, "auto") or devices is not None:
        return devices
    if accelerator == "cpu":
        return "cpu"
    if accelerator in ("gpu", "cuda"):
        from leukoscope.train.hardware import gpus

        if not gpus():
            raise ConfigError("--accelerator gpu, but TensorFlow sees no GPU", hint="use --accelerator cpu")
        return "auto"
    raise ConfigError(f"--accelerator is {accelerator!r}", hint="choose auto, cpu or gpu")


RESUMABLE = ("train.devices", "data.num_workers", "train.progress", "train.state_dir")


def _resume_flags(flags: dict[str, object]) -> dict[str, object]:
    """A resumed run keeps its data, model and recipe; only where and how long it runs may change."""
    from leukoscope.errors import ConfigError

    fixed = sorted(k for k in flags if k not in RESUMABLE)
    if fixed:
        raise ConfigError(
            f"--resume keeps the run's own settings, so {fixed[0]} cannot change",
            hint=f"with --resume only these may be given: {', '.join(RESUMABLE)}",
        )
    return flags


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
