"""Train one classifier with Keras' `model.fit`: from a RunConfig (`fit`) or prepared arrays (`fit_inputs`).

A model folder is written only when training has finished, each file atomically: `model.keras` (the
best epoch by validation weighted F1, never test; float32, no optimizer state), `model_card.json`,
`metrics.json` (validation metrics of that epoch; `timing`: the first step's trace / compile time and
the steady images/s), `history.csv` (one row per epoch), `curves.png`, `config.yaml` (resolved),
`logs/tensorboard/`. While it runs, everything lives in a state folder outside
the outputs (`<out>.state/<name>-<hash>/`, or `train.state_dir`), keyed by a hash of the configuration
and the data: a restarted job resumes from its last complete epoch and says so; a changed configuration
gets a new key and starts afresh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from leukoscope import tree
from leukoscope._io import atomic_path, try_lock, write_json, write_text
from leukoscope.config import PreprocessConfig, RunConfig, runtime_keys
from leukoscope.errors import ConfigError
from leukoscope.train.inputs import HISTORY, FitInputs

log = logging.getLogger(__name__)
RUN_FILES = ("model.keras", "model_card.json", "metrics.json", HISTORY, "curves.png", "splits.csv")
# settings that change how fast or where a run goes, not what it computes: not part of the resume key
RUNTIME_KEYS = tuple(runtime_keys())
# what `--resume` may change: the runtime settings but `out` (the resumed folder is the run's own)
RESUMABLE = tuple(k for k in RUNTIME_KEYS if k != "out")


def fit(cfg: RunConfig, resume: str | Path | None = None, overwrite: bool = False) -> Path:
    """`leukoscope train`: read, split, cache and standardise `cfg.data`, then train; the run folder."""
    from leukoscope.models.weight_files import weights_kind
    from leukoscope.train.data import fit_inputs_from_config, write_splits

    run_dir = Path(resume) if resume is not None else Path(cfg.out)
    if resume is None:
        weights_kind(cfg.model.weights)  # a missing or wrong start file: one line before any data is read
        claim_run_dir(run_dir, overwrite)
    inputs, data = fit_inputs_from_config(cfg)
    cfg = dataclasses.replace(cfg, preprocess=inputs.preprocess, out=str(run_dir))
    if resume is not None and (run_dir / "model.keras").is_file():
        state = state_directory(cfg, run_dir, config_hash(cfg, inputs))
        if not (state / "state.json").is_file():
            raise ConfigError(
                "this run has finished: there is nothing to resume",
                path=run_dir,
                hint="train again with --overwrite, or with another --out",
            )
    write_text(run_dir / "config.yaml", cfg.to_yaml())  # marks the folder as a run in progress
    write_splits(run_dir / "splits.csv", data)
    return fit_inputs(inputs, cfg, run_dir)


def resumed_config(run_dir: str | Path, overrides: dict[str, Any]) -> RunConfig:
    """A run's saved config with `overrides`: only RESUMABLE keys, since the data, model and recipe of a
    resumed run are its own (anything else would change the resume key and start afresh)."""
    saved = Path(run_dir) / "config.yaml"
    if not saved.is_file():
        raise ConfigError("no run to resume here (config.yaml missing)", path=run_dir)
    fixed = sorted(k for k, v in overrides.items() if v is not None and k not in RESUMABLE)
    if fixed:
        raise ConfigError(
            f"--resume keeps the run's own settings, so {fixed[0]} cannot change",
            hint=f"with --resume only these may be given: {', '.join(RESUMABLE)}",
        )
    return RunConfig.from_yaml(saved).override(overrides)


def claim_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse to train over a finished or running run unless told to; --overwrite clears only our files."""
    existing = [n for n in (*RUN_FILES, "config.yaml", "logs") if (run_dir / n).exists()]
    if existing:
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


def config_hash(cfg: RunConfig, inputs: FitInputs) -> str:
    """What decides the trained weights: the config minus runtime knobs, the data, the classes."""
    data = cfg.to_dict()
    for dotted in RUNTIME_KEYS:
        tree.pop(data, dotted)
    data["_inputs"] = {
        "fingerprint": inputs.fingerprint,
        "classes": inputs.class_names,
        "n": len(inputs.train),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def state_directory(cfg: RunConfig, out: Path, key: str) -> Path:
    root = Path(cfg.train.state_dir) if cfg.train.state_dir else out.parent / f"{out.name}.state"
    return root / f"{out.name}-{key[:12]}"


def fit_inputs(inputs: FitInputs, cfg: RunConfig, out: str | Path) -> Path:
    """Train on prepared inputs (the workflow's train rule), resuming a matching state; the model folder."""
    from leukoscope.train import session

    out = Path(out)
    key = config_hash(cfg, inputs)
    state_dir = state_directory(cfg, out, key)
    with exclusive(state_dir):
        job = session.TrainingJob(cfg, inputs, state_dir, key)
        history, state = job.run()
        finish(job, history, state, out)
        shutil.rmtree(state_dir, ignore_errors=True)  # finished: the folder is the result now
    with contextlib.suppress(OSError):
        state_dir.parent.rmdir()  # the default <out>.state root, when nothing else is in it
    return out


@contextlib.contextmanager
def exclusive(state_dir: Path) -> Iterator[None]:
    """One process per resume state: a second job on the same model (e.g. a rerun while a cancelled
    scheduler's job still runs) stops with one line instead of training into the same folder.

    The kernel releases the lock however the holder dies (kill -9 included), so a stale lock never blocks.
    """
    import os
    import socket

    lock = state_dir / ".lock"
    handle = try_lock(lock)
    if handle is None:
        holder = lock.read_text(encoding="utf-8").strip() or "another process"
        raise ConfigError(
            f"this model is being trained right now by {holder}",
            path=state_dir,
            hint="wait for that job to finish (or cancel it), then run again",
        )
    with handle:
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield


def finish(job: Any, history: pd.DataFrame, state: Any, out: Path) -> None:
    """Best weights -> float32 model.keras + card, metrics.json, history.csv, curves.png, TensorBoard logs."""
    from leukoscope.models.card import ModelCard, save_model
    from leukoscope.train.curves import plot_training_curves

    cfg, inputs = job.cfg, job.inputs
    model, feature_layer = job.export_model()
    best = int(state.best_epoch) if state.best_epoch is not None else int(history["epoch"].max())
    row = history[history["epoch"] == best].iloc[-1].to_dict() if len(history) else {}
    metrics = {
        "split": "val",
        "n": len(inputs.val),
        "epoch": best + 1,  # 1-based, as on the curves
        "epochs_run": len(history),
        "stopped_early": bool(state.stopped_early),
        "recipe": job.recipe.to_dict(),
        **{k.removeprefix("val_"): float(v) for k, v in row.items() if k.startswith("val_")},
    }
    timing = job.timing()
    if timing is not None:  # where the time went (this process only: a resumed job counts its own part)
        metrics["timing"] = timing
    card = ModelCard(
        backbone=cfg.model.backbone.lower(),
        class_names=list(inputs.class_names),
        preprocess=inputs.preprocess,
        weights_source=cfg.model.weights,
        positive_class=inputs.positive_class,
        head_hidden=cfg.model.head_hidden,
        dropout=cfg.model.dropout,
        input_mode=job.backbone.input_mode,
        input_normalization=describe_normalization(job.backbone.input_mode, inputs.preprocess),
        feature_layer=feature_layer,
        loss={"name": cfg.loss.name, "params": dict(job.loss_params)},
        recipe=job.recipe.to_dict(),
        data_summary=inputs.data_summary,
        metrics={k: metrics[k] for k in ("split", "n", "epoch", "weighted_f1", "accuracy") if k in metrics},
        model_id=f"{cfg.model.backbone.lower()}-{cfg.loss.name}-{time.strftime('%Y%m%d-%H%M%S')}",
    )
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / HISTORY) as tmp:
        history.to_csv(tmp, index=False)
    plot_training_curves(history, out / "curves.png", title=f"{card.backbone} / {cfg.loss.name}")
    write_json(out / "metrics.json", metrics)
    write_text(out / "config.yaml", cfg.to_yaml())
    _copy_logs(job.state_dir / "tensorboard", out / "logs" / "tensorboard")
    save_model(out, model, card)  # last: model.keras + card present means the folder is complete


def describe_normalization(input_mode: str, pre: PreprocessConfig) -> str:
    if pre.normalize == "backbone":
        return f"the backbone's own ImageNet preprocessing ({input_mode})"
    mean = ", ".join(f"{v:.4f}" for v in pre.mean or ())
    std = ", ".join(f"{v:.4f}" for v in pre.std or ())
    return (
        f"training-set standardisation (x/255 - [{mean}]) / [{std}], "
        f"handed to the backbone in its ImageNet convention ({input_mode})"
    )


def _copy_logs(source: Path, target: Path) -> None:
    if not source.is_dir():
        return
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
