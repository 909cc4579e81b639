# ruff: noqa: RUF009  (`opt` returns a dataclasses.field)
"""The workflow's configuration (config.yaml), typed: one source of defaults for the schema and the rules.

Where a setting is also a `leukoscope.config.RunConfig` setting, its default is read from RunConfig, so
the two cannot drift apart; `workflow/schemas/config.schema.yaml` is generated from these classes
(`leukoscope.workflow.schema`) and a test regenerates it. The Snakefile validates `config` against that
schema (filling in defaults), then `WorkflowConfig.from_dict` gives the rules typed values, and
`run_config` maps one grid cell (backbone x loss) to the RunConfig its training job runs.

Field metadata: `help` (the schema's description), `paper` (True: the paper's value; False: not in the
paper), `minimum`/`maximum` (schema bounds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from leukoscope.config import (
    AugmentConfig,
    DataConfig,
    ModelConfig,
    NormalizeMode,
    OptimConfig,
    Precision,
    PreprocessConfig,
    RunConfig,
    TrainConfig,
    _build,
    _plain,
    yaml_on_key,
)
from leukoscope.errors import ConfigError

Source = Literal["local", "url", "kaggle", "synthetic"]
Protocol = Literal["paper", "heldout", "cv"]
TargetRule = Literal["auto", "balance"]
WorkflowCrop = Literal["auto", "cell", "center", "none"]
StatsImages = Literal["augmented", "original"]
SelectMetric = Literal["weighted_f1", "accuracy", "roc_auc"]

_DATA, _PRE, _MODEL, _TRAIN = DataConfig(), PreprocessConfig(), ModelConfig(), TrainConfig()

PAPER_BACKBONES = ["densenet201", "efficientnetb2"]
PAPER_LOSSES = ["bce", "weighted_bce", "focal", "hinge", "focal_hinge"]


def opt(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    paper: bool | None = None,
    factory: Any = dataclasses.MISSING,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Any:
    """A dataclass field carrying the schema's description and bounds."""
    meta = {"help": help, "paper": paper, "minimum": minimum, "maximum": maximum}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class SyntheticConfig:
    """`leukoscope.data.synth.write_cnmc_synth`'s settings (dataset.source = synthetic)."""

    subjects: int = opt(12, "training subjects (2:1 ALL:HEM, dealt over 3 folds)", minimum=3)
    cells_per_subject: int = opt(30, "cells per training subject", minimum=1)
    prelim: int = opt(0, "labelled preliminary-test cells (new subjects)", minimum=0)
    final: int = opt(0, "unlabelled final-test cells (new subjects, 600x600 like C-NMC)", minimum=0)
    size: int = opt(450, "image side in pixels (C-NMC: 450)", minimum=32, maximum=2048)
    seed: int = opt(0, "generator seed: the same seed gives byte-identical files")
    difficulty: float = opt(0.5, "0: separable classes, 1: chance", minimum=0.0, maximum=1.0)


@dataclass
class DatasetConfig:
    source: Source = opt(
        "local", "local: dataset.path exists; url / kaggle / synthetic: the download rule makes it"
    )
    path: str = opt(
        "resources/C-NMC_Leukemia",
        "dataset root in any layout the readers know (C-NMC, ALL-IDB2, class folders, CSV manifest); "
        "relative to the working directory",
    )
    url: str | None = opt(None, "source url: archive to download and unpack")
    sha256: str | None = opt(None, "source url: expected SHA-256 of the archive")
    kaggle: str | None = opt(None, "source kaggle: dataset slug (owner/name)")
    verify: bool = opt(
        True,
        "check a C-NMC download file by file (sha256) against the embedded manifest; a local copy only when "
        "its file list is C-NMC's; other data: a no-op with a note",
    )
    synthetic: SyntheticConfig = opt(
        factory=SyntheticConfig, help="source synthetic: the generator's settings"
    )
    classes: list[str] | None = opt(_DATA.classes, "restrict to / order these classes (default: the data's)")
    positive_class: str | None = opt(
        _DATA.positive_class, "two classes: the sigmoid's class (default: 'all' when present)"
    )
    limit_per_class: int | None = opt(
        _DATA.limit_per_class, "cap images per class and split (smoke runs)", minimum=1
    )
    skip_unreadable: bool = opt(
        False, "false: unreadable images stop the samples rule (listed); true: they are left out"
    )


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
class PreprocessSection:
    """Deterministic per-image steps of the crop stage (image size: train.image_size)."""

    crop: WorkflowCrop = opt(
        "auto",
        "auto: cell on black backgrounds (C-NMC, the paper's tight crop), center on smears; "
        "cell: tight box around the cell, aspect kept; center; none",
        paper=True,
    )
    black_threshold: int = opt(_PRE.black_threshold, "background: max(R,G,B) <= this", minimum=0, maximum=254)
    center_fraction: float = opt(_PRE.center_fraction, "crop=center: side as a share of the shorter side")
    clahe: bool = opt(_PRE.clahe, "CLAHE on every image once (the paper's CLAHE is an augmentation)")
    clahe_clip: float = opt(_PRE.clahe_clip, "clip limit of that CLAHE")
    clahe_grid: int = opt(_PRE.clahe_grid, "CLAHE tiles per side (also the augmentation's)", minimum=1)
    normalize: NormalizeMode = opt(
        _PRE.normalize, "dataset: the training set's mean/std (the paper); backbone: its own", paper=True
    )


@dataclass
class AugmentSection:
    """The offline augmentation stage: the oversampled, augmented training set (the paper's 20,050)."""

    enabled: bool = opt(True, "false: the training set as cropped, no oversampling", paper=True)
    target: TargetRule | dict[str, int] | None = opt(
        "auto",
        "samples per class after oversampling: auto (the paper's 10,778 HEM / 9,272 ALL on C-NMC under "
        "paper / heldout, else balance), balance (every class to the largest's count; null too), or a "
        "{class: count} mapping naming every class",
        paper=True,
    )
    total: int | None = opt(
        None, "balance / auto without the paper's counts: this many samples in all", minimum=2
    )
    keep_originals: bool = opt(
        True, "each image's first copy is kept as it is; only extra copies are augmented"
    )
    hflip: bool = opt(AugmentConfig.hflip, "random horizontal flips", paper=True)
    vflip: bool = opt(AugmentConfig.vflip, "random vertical flips", paper=True)
    rotation: float = opt(AugmentConfig.rotation, "random rotation, degrees in [-r, r]", minimum=0.0)
    clahe_p: float = opt(AugmentConfig.clahe_p, "probability of CLAHE", paper=True, minimum=0.0, maximum=1.0)
    shards: int = opt(8, "number of .npy shards the set is written as", paper=False, minimum=1)
    seed: int = opt(_TRAIN.seed, "seed of the oversampling and the augmentation draws")


@dataclass
class StatsSection:
    images: StatsImages = opt(
        "augmented", "mean/std over the augmented training set (what the network sees) or the originals"
    )


@dataclass
class TrainSection:
    epochs: int = opt(
        _TRAIN.epochs, "maximum epochs (early stopping on validation weighted F1)", paper=False, minimum=1
    )
    batch_size: int = opt(_TRAIN.batch_size, "images per step", paper=True, minimum=1)
    image_size: int = opt(_PRE.image_size, "side of the cropped, resized images", paper=False, minimum=16)
    weights: str = opt(
        _MODEL.weights,
        "imagenet (Keras' cache: resources/keras/models) | none | a file: Keras' notop .h5 (one backbone), "
        "a .keras / .weights.h5 model",
        paper=True,
    )
    head_hidden: int = opt(
        _MODEL.head_hidden, "GAP -> Dense(head_hidden, ReLU) -> Dense(1)", paper=True, minimum=1
    )
    dropout: float = opt(_MODEL.dropout, "dropout before the output layer", minimum=0.0, maximum=0.99)
    patience: int | None = opt(
        _TRAIN.patience, "early-stopping patience in epochs (null: none)", paper=False, minimum=1
    )
    precision: Precision = opt(
        _TRAIN.precision,
        "auto | fp32 | bf16 | fp16 (32 / 16: old names); auto: fp32 on CPUs, mixed bf16 on GPUs from "
        "compute capability 8, fp16 on 7.x",
    )
    seed: int = opt(_TRAIN.seed, "training seed")
    deterministic: bool = opt(_TRAIN.deterministic, "TensorFlow op determinism: bit-repeatable runs")
    jit_compile: bool | None = opt(_TRAIN.jit_compile, "XLA (null: off on CPU, Keras' choice on GPU)")
    run_eagerly: bool = opt(_TRAIN.run_eagerly, "no graph tracing: faster for a dozen steps")
    max_steps_per_epoch: int | None = opt(
        _TRAIN.max_steps_per_epoch, "cap on steps per epoch (smoke runs)", minimum=1
    )
    augment: AugmentConfig = opt(
        factory=AugmentConfig, help="online augmentation on top of the offline set (flips, rotation, CLAHE)"
    )
    threads: int | None = opt(None, "CPU threads per training job (null: auto)", minimum=1)
    cpu_jobs: int = opt(2, "CPU-only machines: training jobs that share the cores", minimum=1)
    gpus: str = opt("auto", "auto (CUDA_VISIBLE_DEVICES / nvidia-smi), none, or ids like 0,1")
    jobs_per_gpu: int = opt(
        1, "training / predict jobs sharing one GPU (2-3 pay on a large GPU at batch 32)", minimum=1
    )
    devices: str = opt(
        _TRAIN.devices,
        "one job's devices: auto (all the GPUs it was given; MirroredStrategy when > 1), cpu, cpu:N",
    )
    mem_mb: int = opt(16000, "memory resource of a training job", minimum=1)
    runtime: int = opt(720, "runtime resource of a training job, minutes", minimum=1)


@dataclass
class EvaluateSection:
    threshold: float = opt(0.5, "two classes: P(positive) >= threshold", minimum=0.0, maximum=1.0)
    batch_size: int = opt(64, "images per prediction batch", minimum=1)
    bootstrap: int = opt(
        1000, "subject-level bootstrap resamples for 95% intervals (0: none)", paper=False, minimum=0
    )
    bootstrap_seed: int = opt(0, "seed of the bootstrap resampling")


@dataclass
class CvSection:
    folds: int = opt(3, "number of subject-grouped folds (C-NMC's own when 3)", minimum=2)
    inner_fraction: float = opt(
        0.2,
        "share of each outer fold's training subjects that validates (early stopping, loss and ensemble "
        "choice), grouped by subject, stratified by class",
        minimum=0.01,
        maximum=0.9,
    )


@dataclass
class EnsembleSection:
    select: SelectMetric = opt("weighted_f1", "validation metric that picks each backbone's loss")


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
        _DATA.val_fraction,
        "heldout, data with a test split but no folds: share of training subjects held out",
        minimum=0.01,
        maximum=0.99,
    )
    cv: CvSection = opt(factory=CvSection, help="protocol cv: outer folds and the inner validation split")
    grid: GridConfig = opt(factory=GridConfig, help="the backbone x loss training jobs")
    losses: dict[str, dict[str, Any]] = opt(
        factory=dict, help="per-loss parameters, e.g. focal_hinge: {gamma: 2.0}"
    )
    preprocess: PreprocessSection = opt(factory=PreprocessSection, help="the crop stage")
    augment: AugmentSection = opt(factory=AugmentSection, help="the augment stage")
    stats: StatsSection = opt(factory=StatsSection, help="the stats stage")
    train: TrainSection = opt(factory=TrainSection, help="the train jobs")
    optim: OptimConfig = opt(
        factory=OptimConfig, help="the optimizer (the paper: Adam 1e-5, betas 0.7/0.999)"
    )
    evaluate: EvaluateSection = opt(factory=EvaluateSection, help="predict / evaluate")
    ensemble: EnsembleSection = opt(
        factory=EnsembleSection, help="the ensemble of the best loss per backbone"
    )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkflowConfig:
        cfg = _build(cls, apply_aliases(data), "")
        cfg.check()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def check(self) -> None:
        """What a schema cannot say (without importing TensorFlow: see `check_names`)."""
        for key, values in (
            ("grid.backbones", self.grid.backbones),
            ("grid.losses", self.grid.losses),
            ("grid.seeds", self.grid.seeds),
        ):
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"{key} must list at least one value, each once, got {values}")
        if self.dataset.source == "url" and not self.dataset.url:
            raise ConfigError("dataset.source is url but dataset.url is empty")
        if self.dataset.source == "kaggle" and not self.dataset.kaggle:
            raise ConfigError("dataset.source is kaggle but dataset.kaggle is empty")
        weights = self.train.weights.strip().lower()
        if weights not in ("imagenet", "none") and len(self.grid.backbones) > 1:
            raise ConfigError(
                f"train.weights names one file ({self.train.weights}) but grid.backbones lists "
                f"{len(self.grid.backbones)} backbones, and a weights file fits one",
                hint="offline: put Keras' notop files in resources/keras/models and keep train.weights: "
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

        for name in self.grid.losses:
            if name not in LOSSES:
                raise ConfigError(
                    f"grid.losses names an unknown loss {name!r}",
                    hint=f"choose from: {', '.join(LOSSES.names())}",
                )
            params = {k: v for k, v in self.loss_params(name).items() if k != "class_counts"}
            if name in ("weighted_bce", "balanced_bce"):
                params.setdefault("class_counts", [1, 1])
            get_loss(name, **params)
        for name in set(self.losses) - set(LOSSES.names()):
            raise ConfigError(
                f"losses names an unknown loss {name!r}", hint=f"choose from: {', '.join(LOSSES.names())}"
            )
        keras_file = self.train.weights.strip().lower().endswith((".h5", ".hdf5")) and not (
            self.train.weights.strip().lower().endswith(".weights.h5")
        )
        for name in self.grid.backbones:
            spec = get_backbone(name)
            if (self.uses_imagenet() or keras_file) and not spec.imagenet:
                raise ConfigError(
                    f"{spec.label} has no ImageNet weights (train.weights is {self.train.weights})",
                    hint="set train.weights: none for it, or start from a .keras / .weights.h5 model",
                )

    # -- what the rules need -------------------------------------------------------------------------

    @property
    def folds(self) -> int:
        return self.cv.folds

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

    @property
    def predicts_final(self) -> bool:
        return self.protocol != "cv"

    def uses_imagenet(self) -> bool:
        return self.train.weights.strip().lower() == "imagenet"

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


# Renamed keys and values: still accepted, with a one-line notice (`apply_aliases`).
KEY_ALIASES = {"folds": "cv.folds"}
VALUE_ALIASES = {"protocol": {"official": "heldout"}}
CLASS_COUNTS = ("original", "augmented")


def apply_aliases(config: dict[str, Any], notices: list[str] | None = None) -> dict[str, Any]:
    """Rewrite old names in place (a config written for an earlier version keeps working)."""
    notices = [] if notices is None else notices
    losses = config.get("losses")
    if isinstance(losses, dict):
        for name, params in losses.items():
            if isinstance(params, dict):
                losses[name] = yaml_on_key(params)
    for old, new in KEY_ALIASES.items():
        if old in config:
            section, leaf = new.split(".")
            value = config.pop(old)
            config.setdefault(section, {}).setdefault(leaf, value)
            notices.append(f"config: {old} is now {new} (read as {new}: {value})")
    for key, renames in VALUE_ALIASES.items():
        value = config.get(key)
        if isinstance(value, str) and value in renames:
            config[key] = renames[value]
            notices.append(f"config: {key}: {value} is now called {renames[value]} (same protocol)")
    return config


def _same_keys(workflow: str, run: str, section: type) -> tuple[tuple[str, str], ...]:
    return tuple((f"{workflow}.{f.name}", f"{run}.{f.name}") for f in dataclasses.fields(section))


# (workflow key, RunConfig key): everything a training job takes from config.yaml. The one place the
# two meet: `run_config` copies along it, and a test holds each pair's defaults equal.
RUN_KEYS: tuple[tuple[str, str], ...] = (
    ("dataset.classes", "data.classes"),
    ("dataset.positive_class", "data.positive_class"),
    ("dataset.limit_per_class", "data.limit_per_class"),
    *(
        (f"preprocess.{k}", f"preprocess.{k}")
        for k in (
            "crop",
            "black_threshold",
            "center_fraction",
            "clahe",
            "clahe_clip",
            "clahe_grid",
            "normalize",
        )
    ),
    ("train.image_size", "preprocess.image_size"),
    ("train.weights", "model.weights"),
    ("train.head_hidden", "model.head_hidden"),
    ("train.dropout", "model.dropout"),
    *(
        (f"train.{k}", f"train.{k}")
        for k in (
            "epochs",
            "batch_size",
            "patience",
            "precision",
            "seed",
            "deterministic",
            "jit_compile",
            "run_eagerly",
            "max_steps_per_epoch",
            "devices",
        )
    ),
    *_same_keys("train.augment", "augment", AugmentConfig),
    *_same_keys("optim", "optim", OptimConfig),
)
# Workflow keys whose default is RunConfig's: RUN_KEYS, and the offline augmentation's, which starts
# from the same defaults as the online one. Not preprocess.crop: the workflow resolves `auto` from the
# data (the samples rule), while `leukoscope train` keeps the paper's `cell` unless told otherwise.
SHARED_DEFAULTS: tuple[tuple[str, str], ...] = (
    *(pair for pair in RUN_KEYS if pair[0] != "preprocess.crop"),
    *((f"augment.{k}", f"augment.{k}") for k in ("hflip", "vflip", "rotation", "clahe_p")),
    ("augment.seed", "train.seed"),
)


def run_config(
    cfg: WorkflowConfig,
    backbone: str,
    loss: str,
    *,
    out: str | Path,
    state_dir: str | Path,
    preprocess: PreprocessConfig | None = None,
    progress: bool = False,
    crop: str | None = None,
) -> RunConfig:
    """The RunConfig of one training job: RunConfig's defaults, `preprocess` (the stats stage's mean/std)
    and config.yaml's keys along RUN_KEYS; `crop`: `preprocess.crop: auto` as the data resolved it."""
    run = RunConfig(preprocess=preprocess or PreprocessConfig()).to_dict()
    workflow = cfg.to_dict()
    for workflow_key, run_key in RUN_KEYS:
        *parents, leaf = run_key.split(".")
        lookup(run, ".".join(parents))[leaf] = lookup(workflow, workflow_key)
    if crop is not None:
        run["preprocess"]["crop"] = crop
    run["model"]["backbone"] = backbone
    run["loss"] = {"name": loss, "params": cfg.loss_params(loss)}
    run["train"] |= {"state_dir": str(state_dir), "progress": progress}
    run["out"] = str(out)
    return RunConfig.from_dict(run)


def lookup(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node[part]
    return node
