"""`fit(RunConfig) -> run directory`: one Lightning Trainer, from a laptop CPU to multi-node DDP.

The run directory is self-contained: `config.yaml` (resolved, with the training-split mean/std),
`splits.csv`, `checkpoints/{best,last}.ckpt` (atomic), `logs/` (CSV + TensorBoard), then, from the best
epoch on validation (never test): `model.safetensors` + `model_card.json`, `metrics.json`, `curves.png`.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from leukoscope._io import atomic_path, write_json, write_text
from leukoscope.config import RunConfig
from leukoscope.errors import ConfigError, ModelError
from leukoscope.train.callbacks import AtomicCheckpointIO, Throughput
from leukoscope.train.data import (
    data_summary,
    positive_class,
    prepare_data,
    splits_table,
    with_preprocess,
)
from leukoscope.train.datamodule import CellDataModule, TrainingData
from leukoscope.train.hardware import parse_devices, resolve_precision
from leukoscope.train.module import CellClassifier

log = logging.getLogger(__name__)
MONITOR = "val/weighted_f1"
RUN_FILES = (
    "config.yaml",
    "splits.csv",
    "model_card.json",
    "model.safetensors",
    "metrics.json",
    "curves.png",
)
RUN_DIRS = ("checkpoints", "logs")


def fit(cfg: RunConfig, resume: str | Path | None = None, overwrite: bool = False) -> Path:
    """Train `cfg` (or continue the run in `resume` from its last.ckpt); returns the run directory."""
    run_dir = Path(resume) if resume is not None else Path(cfg.out)
    ckpt = _resume_checkpoint(run_dir) if resume is not None else None
    if ckpt is None and is_global_zero():  # before any work, so a clash costs nothing
        _clear_run_dir(run_dir, overwrite)
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    data = prepare_data(cfg)
    cfg = with_preprocess(cfg, data.preprocess)
    module = CellClassifier(
        cfg.to_dict(),
        data.class_names,
        data.class_counts("train"),
        positive_class(data.class_names, cfg),
        init_weights=ckpt is None,
    )
    trainer = build_trainer(cfg, run_dir)
    if trainer.is_global_zero:  # also on resume: config.yaml records e.g. a longer --epochs
        _start_run_dir(run_dir, cfg, data)
    trainer.fit(module, datamodule=CellDataModule(data, cfg), ckpt_path=ckpt)
    if trainer.is_global_zero:
        finish_run(run_dir, trainer, module, data, cfg)
    return run_dir


def is_global_zero() -> bool:
    """True in the process that writes outputs (rank 0 of node 0, or a single-process run).

    Before a Trainer exists this is read from the launcher's environment (RANK, LOCAL_RANK, SLURM_PROCID).
    """
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _resume_checkpoint(run_dir: Path) -> str:
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise ConfigError(
            "nothing to resume: no checkpoints/last.ckpt",
            path=run_dir,
            hint="start the run again without --resume",
        )
    return str(last)


def quiet_lightning() -> None:
    """Drop Lightning's advertising and warnings that say nothing about this run."""
    import warnings

    for pattern in (
        ".*LeafSpec.*",
        ".*smaller than the logging interval.*",
        ".*does not have many workers.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoTips) for f in logger.filters):
        logger.addFilter(_NoTips())


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def build_trainer(cfg: RunConfig, run_dir: Path) -> pl.Trainer:
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    quiet_lightning()
    t = cfg.train
    callbacks: list[pl.Callback] = [
        ModelCheckpoint(  # best on validation (never test); trainer.checkpoint_callback is this one
            dirpath=run_dir / "checkpoints",
            filename="best",
            monitor=MONITOR,
            mode="max",
            save_top_k=1,
            enable_version_counter=False,
        ),
        ModelCheckpoint(  # every epoch, for --resume (save_last=True only refreshes on a new best)
            dirpath=run_dir / "checkpoints",
            filename="last",
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
        ),
        Throughput(),
    ]
    if t.patience:
        callbacks.append(EarlyStopping(monitor=MONITOR, mode="max", patience=t.patience))
    if t.progress:
        callbacks.append(RichProgressBar())
    loggers = [
        CSVLogger(run_dir / "logs", name="csv"),
        TensorBoardLogger(run_dir / "logs", name="tensorboard"),
    ]
    return pl.Trainer(
        max_epochs=t.epochs,
        accelerator=t.accelerator,
        devices=parse_devices(t.devices),
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=resolve_precision(t.precision, t.accelerator),  # type: ignore[arg-type]
        deterministic=t.deterministic,
        callbacks=callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        limit_train_batches=t.max_steps_per_epoch,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.progress,
        enable_model_summary=False,
        default_root_dir=run_dir,
    )


def _clear_run_dir(run_dir: Path, overwrite: bool) -> None:
    existing = [n for n in (*RUN_FILES, *RUN_DIRS) if (run_dir / n).exists()]
    if existing:  # evaluations of the old model would describe a model that is gone
        existing += [p.name for p in run_dir.glob("eval-*") if p.is_dir()]
    if existing and not overwrite:
        raise ConfigError(
            "the output directory already holds a run",
            path=run_dir,
            hint="pass --resume DIR to continue it, --overwrite to replace it, or another --out",
        )
    for name in existing:  # only our own artefacts: --out . must never wipe a folder
        target = run_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()


def _start_run_dir(run_dir: Path, cfg: RunConfig, data: TrainingData) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", cfg.to_yaml())
    with atomic_path(run_dir / "splits.csv") as tmp:
        splits_table(data).to_csv(tmp, index=False)


def finish_run(
    run_dir: Path, trainer: pl.Trainer, module: CellClassifier, data: TrainingData, cfg: RunConfig
) -> None:
    """Best weights -> model card + safetensors, validation metrics of that model, training curves."""
    from leukoscope.evaluate.plots import plot_training_curves
    from leukoscope.models.card import ModelCard, save_model
    from leukoscope.train.history import read_history

    ckpt_path, epoch = _load_best(trainer, module)
    model = module.model.cpu().eval()
    card = ModelCard(
        backbone=cfg.model.backbone,
        class_names=data.class_names,
        preprocess=data.preprocess,
        weights_source=cfg.model.weights,
        positive_class=positive_class(data.class_names, cfg),
        head_hidden=cfg.model.head_hidden,
        dropout=cfg.model.dropout,
        data_summary=data_summary(data),
        model_id=f"{cfg.model.backbone}-{time.strftime('%Y%m%d-%H%M%S')}",
    )
    metrics = validation_metrics(model, card, data)
    metrics |= {"split": "val", "epoch": epoch, "checkpoint": Path(ckpt_path).name}
    card.metrics = {k: metrics[k] for k in ("split", "n", "weighted_f1", "accuracy", "roc_auc", "epoch")}
    save_model(run_dir, model, card)
    write_json(run_dir / "metrics.json", metrics)
    plot_training_curves(read_history(run_dir / "logs"), run_dir / "curves.png", title=cfg.model.backbone)


def _load_best(trainer: pl.Trainer, module: CellClassifier) -> tuple[str, int]:
    """Put the best-on-validation weights into `module` (last.ckpt when no epoch was ever scored)."""
    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_path", "") or ""
    last = os.path.join(getattr(checkpoint, "dirpath", "") or "", "last.ckpt")
    path = best if best and os.path.isfile(best) else last
    if not path or not os.path.isfile(path):
        raise ModelError("training ended without a checkpoint", hint="train for at least one epoch")
    state = torch.load(path, map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    return path, int(state.get("epoch", -1)) + 1  # 1-based, as on the curves


def validation_metrics(model: torch.nn.Module, card: Any, data: TrainingData) -> dict[str, Any]:
    """Metrics of `model` on the run's validation images, through the same engine as `evaluate`."""
    from leukoscope.evaluate.metrics import compute_metrics
    from leukoscope.infer.engine import InferenceEngine

    rows = data.indices("val")
    engine = InferenceEngine(model, card, precision="auto")
    probs = np.concatenate(
        [engine.predict_arrays(np.array(data.images[rows[i : i + 64]])) for i in range(0, len(rows), 64)]
    )
    frame = data.frame.iloc[rows]
    subjects = frame["subject"].to_numpy(str) if frame["subject_known"].all() else None
    return compute_metrics(
        frame["label"].to_numpy(str), probs, card.class_names, card.threshold, subjects, card.positive_class
    )
