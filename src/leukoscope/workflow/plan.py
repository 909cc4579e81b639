"""What the Snakefile asks at parse time: the checked config, the files of every stage, the targets.

Paths are relative to the working directory (`--directory`), so a run from anywhere puts everything in
`<workdir>/results/`. A chain's prefix `scope` is '' for the official protocol and 'cv/fold_k/' for
each fold of the cv protocol; everything below a scope (augment, stats, models, ensemble) repeats per
fold, while the sample sheet and the crops are shared.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from leukoscope.errors import ConfigError
from leukoscope.workflow.config import WorkflowConfig, run_config

DATASET_RECORD = "resources/download/dataset.json"
WEIGHTS_RECORD = "resources/weights/{backbone}.json"
KERAS_HOME = "resources/keras"
SAMPLES = "results/samples/samples.parquet"
SAMPLES_SUMMARY = "results/samples/summary.json"
DATA_CHECK = "results/samples/check.json"
CROP = "results/crop/{part}.npy"
CROP_INDEX = "results/crop/{part}.parquet"
SHARD = "results/{scope}augment/shard_{shard}.npy"
AUGMENT_INDEX = "results/{scope}augment/index.parquet"
STATS = "results/{scope}stats/stats.json"
MODEL_DIR = "results/{scope}models/{backbone}/{loss}"
MODEL_FILES = ("model.keras", "model_card.json", "metrics.json", "history.csv", "curves.png")
PREDICTIONS = "results/{scope}{model}/predictions.parquet"
EVAL = "results/{scope}{model}/eval/{split}.json"
ENSEMBLE = "results/{scope}ensemble/ensemble.json"
ENSEMBLE_CHOICE = "results/{scope}ensemble/choice.json"
SUBMISSION = "results/ensemble/isbi_submission.zip"
STATE = "results/.state/{scope}train/{backbone}/{loss}"
GPU_LOCKS = "results/.state/gpu-locks"
TABLES = ("table1", "table2", "table3")
TABLE = "results/tables/{table}.{ext}"
FIGURES = "results/figures"
CV_SUMMARY = "results/cv/summary.json"
CV_TABLE = "results/tables/cv_summary.{ext}"
CV_FIGURE = "results/figures/cv_f1.png"
LOG = "results/logs/{name}.log"

WILDCARDS = {
    "scope": r"(cv/fold_\d+/)?",
    "model": r"models/[a-z0-9_]+/[a-z0-9_]+|ensemble",
    "backbone": r"[a-z0-9_]+",
    "loss": r"[a-z0-9_]+",
    "part": r"train|val|test|final|pool",
    "split": r"val|test|final",
    "shard": r"\d+",
    "table": r"table\d",
    "ext": r"csv|md",
}


def use_source_tree(basedir: str | Path) -> None:
    """Jobs import the engine of this clone (a conda env from envs/ holds only its dependencies)."""
    import os

    src = Path(basedir) / "src"
    if (src / "leukoscope").is_dir():
        parts = [
            str(src),
            *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(src)),
        ]
        os.environ["PYTHONPATH"] = os.pathsep.join(parts)


def load(config: dict[str, Any], *, check_data: bool = True) -> WorkflowConfig:
    """Snakemake's `config` (validated, defaults filled) -> WorkflowConfig; then the dataset's checks."""
    cfg = WorkflowConfig.from_dict(config)
    if check_data:
        preflight(cfg)
    return cfg


def preflight(cfg: WorkflowConfig) -> None:
    """Before any job: a start weights file must exist and be what it claims; a local dataset must exist,
    read as a known layout and have two classes."""
    from leukoscope.data.samples import check_classes

    start_weights(cfg)
    if cfg.dataset.source != "local":
        return  # the download rule makes it (and the samples rule checks it)
    path = Path(cfg.dataset.path).expanduser()
    if not path.exists():
        raise ConfigError(
            "dataset.path does not exist",
            path=path.resolve(),
            hint="point dataset.path at the dataset (relative to the working directory), "
            "or set dataset.source to synthetic / url / kaggle",
        )
    check_classes(path, cfg.dataset.classes)


def start_weights(cfg: WorkflowConfig) -> str | None:
    """The file `train.weights` names (a model folder's model.keras), None for imagenet / none: an input
    of every training job, so a changed file retrains. Checked by its first bytes (no Keras)."""
    from leukoscope.models.weight_files import start_file

    path = start_file(cfg.train.weights)
    return None if path is None else str(path)


def model_file(
    name: str, scope: str | None = None, backbone: str | None = None, loss: str | None = None
) -> str:
    """A file of a model folder, with the wildcards left open unless given."""
    if scope is None:
        return f"{MODEL_DIR}/{name}"
    return f"{model_dir(scope, str(backbone), str(loss))}/{name}"


def fold_of(scope: str) -> int | None:
    match = re.fullmatch(r"cv/fold_(\d+)/", scope)
    return int(match.group(1)) if match else None


def models(cfg: WorkflowConfig) -> list[tuple[str, str]]:
    return [(b.lower(), loss) for b in cfg.grid.backbones for loss in cfg.grid.losses]


def model_dir(scope: str, backbone: str, loss: str) -> str:
    return MODEL_DIR.format(scope=scope, backbone=backbone, loss=loss)


def shards(cfg: WorkflowConfig, scope: str | None = None) -> list[str]:
    """The augment stage's shard files (with `{scope}` left open when scope is None)."""
    names = [f"{k:02d}" for k in range(cfg.augment.shards)]
    if scope is None:
        return [SHARD.replace("{shard}", n) for n in names]
    return [SHARD.format(scope=scope, shard=n) for n in names]


def train_part(cfg: WorkflowConfig) -> str:
    return "pool" if cfg.protocol == "cv" else "train"


def val_part(cfg: WorkflowConfig) -> str:
    return "pool" if cfg.protocol == "cv" else "val"


def predict_parts(cfg: WorkflowConfig) -> list[str]:
    """Crop files a predict job reads: the validation images, the test split, the final test."""
    return ["pool", "test"] if cfg.protocol == "cv" else ["val", "test", "final"]


def canonical(obj: Any) -> Any:
    """Mappings with sorted keys, tuples as lists: Snakemake compares params as text, so the order of
    keys in config.yaml (or a config rewritten by a tool) must not look like a change."""
    if isinstance(obj, dict):
        return {str(k): canonical(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, list | tuple):
        return [canonical(v) for v in obj]
    return obj


def train_settings(cfg: WorkflowConfig, backbone: str, loss: str) -> dict[str, Any]:
    """What decides a training job's result (its rerun trigger): the RunConfig minus where it runs."""
    run = run_config(cfg, backbone, loss, out="", state_dir="").to_dict()
    run.pop("out")
    for key in ("state_dir", "progress"):
        run["train"].pop(key)
    run.pop("data")  # the splits are the sample sheet's, an input file
    return canonical(run)


def crop_settings(cfg: WorkflowConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return canonical({**asdict(cfg.preprocess), "image_size": cfg.train.image_size})


def samples_settings(cfg: WorkflowConfig) -> dict[str, Any]:
    d = cfg.dataset
    return canonical(
        {
            "protocol": cfg.protocol,
            "folds": cfg.folds,
            "val_fold": cfg.val_fold,
            "val_fraction": cfg.val_fraction,
            "classes": d.classes,
            "positive_class": d.positive_class,
            "limit_per_class": d.limit_per_class,
            "seed": cfg.train.seed,
            "verify": d.verify,
        }
    )


def augment_settings(cfg: WorkflowConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return canonical({**asdict(cfg.augment), "clahe_grid": cfg.preprocess.clahe_grid})


def eval_files(cfg: WorkflowConfig, scope: str, split: str) -> dict[str, str]:
    """{'backbone/loss': eval json} of every model of a scope, and 'ensemble'."""
    out = {
        f"{b}/{loss}": EVAL.format(scope=scope, model=f"models/{b}/{loss}", split=split)
        for b, loss in models(cfg)
    }
    out["ensemble"] = EVAL.format(scope=scope, model="ensemble", split=split)
    return out


def figure_files(cfg: WorkflowConfig) -> dict[str, str]:
    backbones = sorted({b for b, _ in models(cfg)})
    files = {f"curves_{b}": f"{FIGURES}/curves_{b}.png" for b in backbones}
    files |= {
        "f1_heatmap": f"{FIGURES}/f1_heatmap.png",
        "confusion": f"{FIGURES}/confusion_matrices.png",
        "roc": f"{FIGURES}/roc.png",
    }
    return files


def table_files() -> list[str]:
    return [TABLE.format(table=t, ext=e) for t in TABLES for e in ("csv", "md")]


def dataset_settings(cfg: WorkflowConfig) -> dict[str, Any]:
    """The download rule's params: the `dataset` section."""
    return canonical(cfg.to_dict()["dataset"])


def targets(cfg: WorkflowConfig) -> list[str]:
    """`rule all`: the paper's tables and figures (official) or the cross-validation summary (cv)."""
    if cfg.protocol == "cv":
        return [CV_SUMMARY, CV_TABLE.format(ext="csv"), CV_TABLE.format(ext="md"), CV_FIGURE, DATA_CHECK]
    return [*table_files(), *figure_files(cfg).values(), ENSEMBLE.format(scope=""), SUBMISSION, DATA_CHECK]
