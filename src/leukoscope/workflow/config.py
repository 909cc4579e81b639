# ruff: noqa: RUF009  (`opt` returns a dataclasses.field)
"""The workflow's configuration (config.yaml), typed: the engine's sections nested, the workflow's own around.

`preprocess`, `model`, `optim` and `train` (with `train.augment`, the online augmentation) ARE the engine's
`leukoscope.config` sections, so a training job's RunConfig is these sections merged (`run_config`), not
a map of keys; the workflow adds where the data come from (`dataset`), which split does what
(`protocol`, `val_fold`, `cv`), the grid (`grid`, `losses`), the offline `augment` stage, `stats`,
`evaluate`, `ensemble` and the machines' `resources`. `workflow/schemas/config.schema.yaml` is generated
from these classes (`leukoscope.workflow.schema`); field metadata (`leukoscope.config.opt`) gives its
descriptions and bounds. Keys that moved or were renamed are read under their new names with a notice.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from leukoscope import tree
from leukoscope.config import (
    AugmentConfig,
    CropMode,
    LossConfig,
    ModelConfig,
    OptimConfig,
    PreprocessConfig,
    RunConfig,
    TrainConfig,
    _build,
    opt,
    yaml_on_key,
)
from leukoscope.data.download import DatasetConfig
from leukoscope.data.protocols import CvConfig
from leukoscope.errors import ConfigError
from leukoscope.evaluate.predictions import EvaluateConfig
from leukoscope.experiments.selection import EnsembleConfig
from leukoscope.preprocess.stages import OfflineAugmentConfig, StatsConfig

Protocol = Literal["paper", "heldout", "cv"]

PAPER_BACKBONES = ["densenet201", "efficientnetb2"]
PAPER_LOSSES = ["bce", "weighted_bce", "focal", "hinge", "focal_hinge"]
_TRAIN = TrainConfig()


@dataclass
class GridConfig:
    backbones: list[str] = opt(
        factory=lambda: list(PAPER_BACKBONES), help="keras.applications names (or simplecnn)", paper=True
    )
    losses: list[str] = opt(factory=lambda: list(PAPER_LOSSES), help="registered loss names", paper=True)
    seeds: list[int] = opt(
        factory=lambda: [_TRAIN.seed],
        help="training seeds: every model once per seed; scores are the seed-averaged probabilities",
        paper=False,
    )


@dataclass
class PreprocessSection(PreprocessConfig):
    """The engine's preprocessing, `crop: auto` by default: the samples rule picks cell or center."""

    crop: CropMode = opt(
        "auto",
        "auto: the tight cell crop on black backgrounds (C-NMC, the paper's), the centre square on smears; "
        "cell: tight box around the cell, aspect kept; center; none",
        paper=True,
    )


@dataclass
class TrainSection(TrainConfig):
    """The engine's training settings, with the online augmentation on top of the offline set."""

    augment: AugmentConfig = opt(
        factory=AugmentConfig, help="online augmentation on top of the offline set (flips, rotation, CLAHE)"
    )


@dataclass
class ResourcesSection:
    """What the scheduler gives each job (Snakemake threads and resources); not what a job computes."""

    threads: int | None = opt(None, "CPU threads per training / predict job (null: auto)", minimum=1)
    cpu_jobs: int = opt(2, "CPU-only machines: training jobs that share the cores", minimum=1)
    gpus: str = opt("auto", "auto (CUDA_VISIBLE_DEVICES / nvidia-smi), none, or ids like 0,1")
    jobs_per_gpu: int = opt(
        1, "training / predict jobs sharing one GPU (2 pay on a large GPU at batch 32)", minimum=1
    )
    mem_mb: int = opt(16000, "memory resource of a training job", minimum=1)
    runtime: int = opt(720, "runtime resource of a training job, minutes", minimum=1)


@dataclass
class WorkflowConfig:
    dataset: DatasetConfig = opt(factory=DatasetConfig, help="where the images come from")
    protocol: Protocol = opt(
        "paper",
        "paper: train on every training fold, validate on the labelled preliminary test, predict the final "
        "test; heldout: validate on val_fold, score on the preliminary test; cv: subject-grouped K folds "
        "(official: the old name of heldout)",
    )
    val_fold: int | None = opt(2, "heldout: the training fold that validates", paper=False)
    val_fraction: float = opt(
        0.2,
        "heldout, data with a test split but no folds: share of training subjects held out",
        minimum=0.01,
        maximum=0.99,
    )
    cv: CvConfig = opt(factory=CvConfig, help="protocol cv: outer folds and the inner validation split")
    grid: GridConfig = opt(factory=GridConfig, help="the backbone x loss training jobs")
    losses: dict[str, dict[str, Any]] = opt(
        factory=dict, help="per-loss parameters, e.g. focal_hinge: {gamma: 2.0}"
    )
    preprocess: PreprocessSection = opt(factory=PreprocessSection, help="the crop stage (the engine's)")
    augment: OfflineAugmentConfig = opt(factory=OfflineAugmentConfig, help="the offline augment stage")
    stats: StatsConfig = opt(factory=StatsConfig, help="the stats stage")
    model: ModelConfig = opt(factory=ModelConfig, help="the classifier (the engine's; backbones: grid)")
    train: TrainSection = opt(factory=TrainSection, help="the train jobs (the engine's)")
    optim: OptimConfig = opt(
        factory=OptimConfig, help="the optimizer (the engine's; the paper: Adam 1e-5, betas 0.7/0.999)"
    )
    resources: ResourcesSection = opt(factory=ResourcesSection, help="threads, GPUs, memory, runtime")
    evaluate: EvaluateConfig = opt(factory=EvaluateConfig, help="predict / evaluate")
    ensemble: EnsembleConfig = opt(factory=EnsembleConfig, help="the ensemble of the best loss per backbone")

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], source: str = "config", notices: list[str] | None = None
    ) -> WorkflowConfig:
        """The one validation: renamed keys read under their new names (`notices` says which), then
        names, types, choices, bounds (`_build`) and what a type cannot say (`check`); defaults are the
        dataclasses'. The first problem is one line naming the key and `source`."""
        try:
            cfg = _build(cls, apply_aliases(copy.deepcopy(dict(data)), notices), "", workflow=True)
            cfg.check()
        except ConfigError as exc:
            raise ConfigError(exc.what, path=exc.path or source, hint=exc.hint) from None
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return tree.plain(dataclasses.asdict(self))

    def section(self, name: str) -> dict[str, Any]:
        """A section as a rule's params: keys sorted, since Snakemake reruns a job when their text changes."""
        return tree.canonical(self.to_dict()[name])

    def check(self) -> None:
        """What a schema cannot say (without importing TensorFlow: see `check_names`)."""
        for key in ("backbones", "losses", "seeds"):
            values = getattr(self.grid, key)
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"grid.{key} must list at least one value, each once, got {values}")
        self.dataset.validate()
        weights = self.model.weights.strip().lower()
        if weights not in ("imagenet", "none") and len(self.grid.backbones) > 1:
            raise ConfigError(
                f"model.weights names one file ({self.model.weights}) but grid.backbones lists "
                f"{len(self.grid.backbones)} backbones, and a weights file fits one",
                hint="offline: put Keras' notop files in resources/keras/models and keep model.weights: "
                "imagenet; or train one backbone per config",
            )
        target = self.augment.target
        if isinstance(target, dict) and any(v < 1 for v in target.values()):
            raise ConfigError(f"augment.target must be positive counts, got {target}")
        counts = self.losses.get("weighted_bce", {}).get("counts", "original")
        if counts not in CLASS_COUNTS:
            raise ConfigError(
                f"losses.weighted_bce.counts is {counts!r}", hint=f"choose one of: {', '.join(CLASS_COUNTS)}"
            )

    def check_names(self) -> None:
        """Registered backbone and loss names, and their parameters (imports Keras: ~5 s)."""
        from leukoscope.losses import LOSSES, get_loss
        from leukoscope.models.backbones import get_backbone
        from leukoscope.train.inputs import NEEDS_CLASS_COUNTS

        for key, names in (("grid.losses", self.grid.losses), ("losses", list(self.losses))):
            if unknown := [name for name in names if name not in LOSSES]:
                hint = f"choose from: {', '.join(LOSSES.names())}"
                raise ConfigError(f"{key} names an unknown loss {unknown[0]!r}", hint=hint)
        for name in self.grid.losses:  # the counts come from the data: any two check the parameters
            counts = {"class_counts": [1, 1]} if name in NEEDS_CLASS_COUNTS else {}
            get_loss(name, **counts | self.loss_params(name))
        weights = self.model.weights.strip().lower()
        keras_file = weights.endswith((".h5", ".hdf5")) and not weights.endswith(".weights.h5")
        for name in self.grid.backbones:
            spec = get_backbone(name)
            if (self.uses_imagenet() or keras_file) and not spec.imagenet:
                raise ConfigError(
                    f"{spec.label} has no ImageNet weights (model.weights is {self.model.weights})",
                    hint="set model.weights: none for it, or start from a .keras / .weights.h5 model",
                )

    # -- what the rules need -------------------------------------------------------------------------

    @property
    def scopes(self) -> list[str]:
        """Path prefixes of the chains: '' (paper, heldout) or 'cv/fold_k/' for each fold."""
        if self.protocol == "cv":
            return [f"cv/fold_{k}/" for k in range(self.cv.folds)]
        return [""]

    @property
    def crop_parts(self) -> list[str]:
        """The crop stage's files, one per part of the sample sheet (cv: the pool the folds come from)."""
        from leukoscope.data.samples import PARTS

        return list(PARTS[self.protocol])

    @property
    def eval_splits(self) -> list[str]:
        """Splits scored with labels (the final test has no public labels: predictions only).

        paper: the preliminary test validates and is scored (as the paper's Table 3); heldout: fold 2
        validates, the preliminary test scores; cv: the inner split validates, the outer fold scores.
        """
        return ["val"] if self.protocol == "paper" else ["val", "test"]

    @property
    def scored_split(self) -> str:
        """The split Table 2 and the figures are on: `test` where one is held out from every choice; in
        `paper` the preliminary test, which is also the selection set (`val`)."""
        return self.eval_splits[-1]

    def uses_imagenet(self) -> bool:
        return self.model.weights.strip().lower() == "imagenet"

    def loss_params(self, loss: str) -> dict[str, Any]:
        """The loss's own parameters (`counts`, the workflow's choice of class counts, removed)."""
        params = dict(self.losses.get(loss, {}))
        params.pop("counts", None)
        return params

    def class_counts_from(self, loss: str) -> str | None:
        """weighted_bce / balanced_bce: whose counts W_i = N / (c n_i) uses: original or augmented."""
        from leukoscope.train.inputs import NEEDS_CLASS_COUNTS

        if loss not in NEEDS_CLASS_COUNTS:
            return None
        return str(self.losses.get(loss, {}).get("counts", "original"))


# Renamed or moved keys and values: still accepted, with a one-line notice (`apply_aliases`).
KEY_ALIASES = {
    "folds": "cv.folds",
    "train.image_size": "preprocess.image_size",
    **{f"train.{k}": f"model.{k}" for k in ("weights", "head_hidden", "dropout")},
    **{
        f"train.{k}": f"resources.{k}"
        for k in ("threads", "cpu_jobs", "gpus", "jobs_per_gpu", "mem_mb", "runtime")
    },
}
VALUE_ALIASES = {"protocol": {"official": "heldout"}, "train.precision": {"32": "fp32", "16": "fp16"}}
CLASS_COUNTS = ("original", "augmented")


def apply_aliases(config: dict[str, Any], notices: list[str] | None = None) -> dict[str, Any]:
    """Rewrite old names in place (a config written for an earlier version keeps working); YAML's
    `on:` read as True in a loss's parameters is the hinge losses' `on`."""
    notices = [] if notices is None else notices
    for name, params in (config.get("losses") or {}).items():
        if isinstance(params, dict):
            config["losses"][name] = yaml_on_key(params)
    for old, new in KEY_ALIASES.items():
        if tree.has(config, old):
            value = tree.pop(config, old)
            if not tree.has(config, new):
                tree.put(config, new, value)
            notices.append(f"config: {old} is now {new} (read as {new}: {value})")
    for key, renames in VALUE_ALIASES.items():
        value = str(tree.get(config, key, None))
        if value in renames:
            tree.put(config, key, renames[value])
            notices.append(f"config: {key}: {value} is now called {renames[value]} (the same setting)")
    return config


def run_config(
    cfg: WorkflowConfig,
    backbone: str,
    loss: str,
    *,
    out: str | Path,
    state_dir: str | Path,
    seed: int | None = None,
    progress: bool = False,
    crop: str | None = None,
) -> RunConfig:
    """The RunConfig of one training job: the workflow's engine sections merged with what the job adds
    (its backbone, loss, seed, folders; `crop`: `preprocess.crop: auto` as the data resolved it)."""
    train = {k: v for k, v in dataclasses.asdict(cfg.train).items() if k != "augment"}
    preprocess = dataclasses.asdict(cfg.preprocess) | ({"crop": crop} if crop else {})
    return RunConfig(
        preprocess=PreprocessConfig(**preprocess),
        augment=cfg.train.augment,
        model=dataclasses.replace(cfg.model, backbone=backbone),
        loss=LossConfig(loss, cfg.loss_params(loss)),
        optim=cfg.optim,
        train=TrainConfig(
            **train
            | {"state_dir": str(state_dir), "progress": progress}
            | ({"seed": int(seed)} if seed is not None else {})
        ),
        out=str(out),
    )
