"""What the Snakefile asks at parse time: the checked config, the grid, each job's settings.

The rules write their paths out, relative to the working directory (`--directory`), so a run from
anywhere puts everything in `<workdir>/results/`. A chain's prefix `scope` is '' for the paper and heldout
protocols and 'cv/fold_k/' for each fold of the cv protocol; everything below a scope (augment, stats,
models, ensemble) repeats per fold, while the sample sheet and the crops are shared. Each backbone x loss
is trained once per seed (`models/{backbone}/{loss}/seed_{seed}/`); its scores are those of the
seed-averaged probabilities (`models/{backbone}/{loss}/predictions.parquet`).
"""

from __future__ import annotations

import atexit
import os
import re
import sys
from pathlib import Path
from typing import Any

from leukoscope import tree
from leukoscope.config import runtime_keys
from leukoscope.errors import ConfigError, LeukoScopeError
from leukoscope.tree import canonical
from leukoscope.workflow.config import WorkflowConfig, run_config

WILDCARDS = {
    "scope": r"(cv/fold_\d+/)?",
    "model": r"models/[a-z0-9_]+/[a-z0-9_]+|ensemble",
    "backbone": r"[a-z0-9_]+",
    "loss": r"[a-z0-9_]+",
    "seed": r"\d+",
    "part": r"train|val|test|final|pool",
}


def checked_config(workflow: Any, config: dict[str, Any]) -> WorkflowConfig:
    """The Snakefile's config, validated once (`WorkflowConfig.from_dict`); a problem is one line
    (WorkflowError). Parse time reads nothing else: the data and the names are checked in `onstart`
    (`started`), before the first job. Only the main process (not a cluster job parsing again, nor
    `--lint`) prints renamed-key notices and, with no dataset yet, where it goes: at exit, after a dry
    run's plan."""
    from snakemake.exceptions import WorkflowError

    from leukoscope.workflow.machine import main_process

    notices: list[str] = []
    source = ", ".join(map(str, workflow.configfiles)) or "config"
    try:
        cfg = WorkflowConfig.from_dict(config, source, notices)
    except LeukoScopeError as exc:
        raise WorkflowError(exc.one_line()) from None
    if main_process(workflow):
        for notice in notices:
            print(notice, file=sys.stderr)
        if note := missing_data_note(cfg):
            atexit.register(lambda: None if _STARTED else print(note, file=sys.stderr))
    return cfg


_STARTED: list[bool] = []  # a real run (Snakemake runs `onstart` for real runs only)
CHECKED_ENV = "LEUKOSCOPE_CHECKED"  # "1": `leukoscope workflow` / `demo` checked this config already


def started(cfg: WorkflowConfig) -> None:
    """`onstart`, once a real run is about to start its jobs: the dataset (`preflight`), then the
    backbone and loss names (imports Keras: 4 s and 0.6 GB kept by Snakemake's process for the whole
    run). A problem is one line, before any job. Skipped when the CLI ran them (`runner.preflight_file`)."""
    from snakemake.exceptions import WorkflowError

    _STARTED.append(True)
    if os.environ.get(CHECKED_ENV) == "1":
        return
    try:
        preflight(cfg)
        cfg.check_names()
    except LeukoScopeError as exc:
        raise WorkflowError(exc.one_line()) from None


def missing_data_note(cfg: WorkflowConfig) -> str | None:
    """One line saying where to put the data, or how to download it, when a local dataset is missing."""
    path = Path(cfg.dataset.path).expanduser()
    if cfg.dataset.source != "local" or path.exists():
        return None
    return (
        f"note: no dataset at {path.resolve()} yet: put C-NMC 2019 (the C-NMC_Leukemia folder) there or "
        "set dataset.path, or let the download rule fetch it (dataset.source: kaggle with ~/.kaggle/"
        "kaggle.json, or url); the real run stops before any job until then"
    )


def preflight(cfg: WorkflowConfig) -> dict[str, Any]:
    """Before any job: a local dataset must exist, read as a known layout, suit the protocol, and its
    classes must match every setting that names classes (dataset.classes / positive_class,
    augment.target); a start weights file must exist and be what it claims. Returns what it found
    (classes, counts) for the log."""
    from leukoscope.data.protocols import check_dataset_plan, training_pool
    from leukoscope.data.readers import read_dataset
    from leukoscope.preprocess.balance import resolve_target

    start_weights(cfg)
    if cfg.dataset.source != "local":
        return {}  # the download rule makes it (and the samples rule checks it)
    path = Path(cfg.dataset.path).expanduser()
    if not path.exists():
        raise ConfigError(
            "dataset.path does not exist",
            path=path.resolve(),
            hint="point dataset.path at the dataset (relative to the working directory), "
            "or set dataset.source to synthetic / url / kaggle",
        )
    table = read_dataset(path)
    classes, positive = check_dataset_plan(
        table, protocol=cfg.protocol, folds=cfg.cv.folds, val_fold=cfg.val_fold,
        classes=cfg.dataset.classes, positive_class=cfg.dataset.positive_class,
    )  # fmt: skip
    pool = training_pool(table)
    counts = [int((pool["label"] == c).sum()) for c in classes]
    target, why = resolve_target(
        cfg.augment.target, classes, counts, protocol=cfg.protocol, total=cfg.augment.total
    )
    return {"classes": classes, "positive_class": positive, "target": target, "target_reason": why}


def start_weights(cfg: WorkflowConfig) -> str | None:
    """The file `model.weights` names (a model folder's model.keras), None for imagenet / none: an input
    of every training job, so a changed file retrains. Checked by its first bytes (no Keras)."""
    from leukoscope.models.weight_files import start_file

    path = start_file(cfg.model.weights)
    return None if path is None else str(path)


def fold_of(scope: str) -> int | None:
    match = re.fullmatch(r"cv/fold_(\d+)/", scope)
    return int(match.group(1)) if match else None


def models(cfg: WorkflowConfig) -> list[str]:
    """ "backbone/loss" of every grid cell (a model folder's parent below `models/`)."""
    return [f"{b.lower()}/{loss}" for b in cfg.grid.backbones for loss in cfg.grid.losses]


def part(cfg: WorkflowConfig, split: str) -> str:
    """The crop file holding a split's images: its own, or under cv the pool (each fold picks its rows)."""
    return "pool" if cfg.protocol == "cv" else split


def predict_parts(cfg: WorkflowConfig) -> list[str]:
    """Crop files a predict job reads: every part but the training set's (cv: the pool, whose rows of
    this fold are its validation and test images)."""
    return [p for p in cfg.crop_parts if p != "train"]


def train_settings(cfg: WorkflowConfig, backbone: str, loss: str, seed: int | str) -> dict[str, Any]:
    """What decides a training job's result (its rerun trigger): the RunConfig minus where it runs."""
    run = run_config(cfg, backbone, loss, out="", state_dir="", seed=int(seed)).to_dict()
    for dotted in runtime_keys():
        tree.pop(run, dotted)
    run.pop("data")  # the splits are the sample sheet's, an input file
    counts = cfg.class_counts_from(loss)
    if counts is not None:
        run["loss"]["class_counts_from"] = counts
    return canonical(run)


def samples_settings(cfg: WorkflowConfig) -> dict[str, Any]:
    d = cfg.dataset
    return canonical(
        {
            "protocol": cfg.protocol,
            "folds": cfg.cv.folds,
            "inner_fraction": cfg.cv.inner_fraction,
            "val_fold": cfg.val_fold,
            "val_fraction": cfg.val_fraction,
            "classes": d.classes,
            "positive_class": d.positive_class,
            "limit_per_class": d.limit_per_class,
            "seed": cfg.train.seed,
            "verify": d.verify,
            "skip_unreadable": d.skip_unreadable,
            "crop": cfg.preprocess.crop,
            "black_threshold": cfg.preprocess.black_threshold,
        }
    )


def augment_settings(cfg: WorkflowConfig) -> dict[str, Any]:
    """The offline augment stage's section, with the CLAHE grid and the protocol it needs too."""
    extra = {"clahe_grid": cfg.preprocess.clahe_grid, "protocol": cfg.protocol}
    return canonical(cfg.to_dict()["augment"] | extra)
