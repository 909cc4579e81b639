# ruff: noqa: RUF009  (`opt` returns a dataclasses.field)
"""Every tunable of a run, typed, in one place.

A run's configuration is a `RunConfig` built from defaults, then a YAML file (`--config`), then CLI flags
(flags win). The resolved config is saved in the run directory, so a run is reproducible from it alone.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from leukoscope import tree
from leukoscope.errors import ConfigError
from leukoscope.tree import plain

CropMode = Literal["cell", "center", "none", "auto"]
NormalizeMode = Literal["dataset", "backbone"]
BalanceMode = Literal["none", "oversample", "class_weight"]
Precision = Literal["auto", "fp32", "bf16", "fp16", "32", "16"]  # leukoscope.precision; 32 / 16: old names
Optimizer = Literal["adam", "adamw", "sgd"]
Scheduler = Literal["none", "cosine", "plateau"]
Fill = Literal["black", "reflect"]
RecipeName = Literal["auto", "paper", "scratch"]
TargetRule = Literal["auto", "balance"]  # oversampling targets resolved against the data


def opt(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    paper: bool | None = None,
    factory: Any = dataclasses.MISSING,
    minimum: float | None = None,
    maximum: float | None = None,
    workflow: bool = True,
    runtime: bool = False,
) -> Any:
    """A field with what the workflow's schema says of it (`leukoscope.workflow.schema`).

    `paper`: True (the paper's value), False (not in the paper); `workflow`: False for what config.yaml
    does not set (the rules fill it in); `runtime`: where or how fast a run goes, not what it computes
    (left out of the resume key, and allowed with `leukoscope train --resume`).
    """
    meta = {"help": help, "paper": paper, "minimum": minimum, "maximum": maximum, "workflow": workflow,
            "runtime": runtime}  # fmt: skip
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class PreprocessConfig:
    """Deterministic per-image steps; their output (uint8, size x size) is what the cache stores."""

    crop: CropMode = opt(
        "cell",
        "cell: tight box around the cell on black, aspect kept (the paper's); center: the centre square "
        "(cells on a smear); none; auto: chosen from the images' background",
        paper=True,
    )
    image_size: int = opt(224, "side of the cropped, resized images", paper=False, minimum=16)
    black_threshold: int = opt(15, "background: max(R,G,B) <= this", minimum=0, maximum=254)
    center_fraction: float = opt(0.7, "crop=center: side as a share of the shorter side")
    clahe: bool = opt(False, "CLAHE on every image once (the paper's CLAHE is an augmentation)")
    clahe_clip: float = opt(2.0, "clip limit of that CLAHE")
    clahe_grid: int = opt(8, "CLAHE tiles per side (also the augmentation's)", minimum=1)
    normalize: NormalizeMode = opt(
        "dataset", "dataset: the training set's mean/std (the paper); backbone: its own", paper=True
    )
    mean: tuple[float, float, float] | None = opt(None, "training-set mean, [0, 1] units", workflow=False)
    std: tuple[float, float, float] | None = opt(None, "training-set std, [0, 1] units", workflow=False)


@dataclass
class AugmentConfig:
    """Random train-time augmentation: NumPy + OpenCV inside tf.data, seeded by (seed, epoch, sample)."""

    hflip: bool = opt(True, "random horizontal flips", paper=True)
    vflip: bool = opt(True, "random vertical flips", paper=True)
    rotation: float = opt(90.0, "random rotation, degrees in [-r, r]", paper=False, minimum=0.0)
    clahe_p: float = opt(
        0.5, "probability of a random CLAHE (clip limit in [1, 4])", minimum=0.0, maximum=1.0
    )
    enabled: bool = opt(True, "false: no random augmentation")
    # null: the recipe's choice (train.recipe: paper 0 / black; scratch: leukoscope.train.recipe)
    zoom: float | None = opt(
        None, "scale uniform in [1 - zoom, 1 + zoom] (null: the recipe's)", paper=False, minimum=0.0,
        maximum=0.99,
    )  # fmt: skip
    shift: float | None = opt(
        None, "translation, +-shift x the side (null: the recipe's)", paper=False, minimum=0.0, maximum=0.49
    )
    color: float | None = opt(
        None, "brightness, contrast, saturation in [1 - color, 1 + color] (null: the recipe's)", paper=False,
        minimum=0.0, maximum=0.99,
    )  # fmt: skip
    fill: Fill | None = opt(
        None, "borders of rotated / shifted images: black (cells on black) | reflect (null: the recipe's)"
    )


@dataclass
class DataConfig:
    data: str | None = None  # a dataset folder the readers know, or a CSV manifest
    val: str | None = None  # another dataset, or None to hold out subjects / use an official fold
    test: str | None = None
    val_fold: int | None = None  # C-NMC: which official training fold is validation (None: grouped split)
    val_fraction: float = 0.2  # grouped hold-out fraction when there is no official split
    classes: list[str] | None = None  # restrict to / order these classes (default: those in the data)
    positive_class: str | None = None  # two classes: the sigmoid's class (default 'all' when present)
    limit_per_class: int | None = None  # cap images per class (smoke runs)
    cache_dir: str | None = opt(None, "preprocessing cache (default: ~/.cache/leukoscope)", runtime=True)
    num_workers: int = opt(0, "parallel tf.data calls (0: autotune)", runtime=True)


@dataclass
class ModelConfig:
    backbone: str = opt("densenet201", "any keras.applications model, case-insensitive", workflow=False)
    weights: str = opt(
        "imagenet",
        "imagenet (fetched once by the weights rule) | none | Keras' notop .h5 | a .keras / .weights.h5 "
        "file or model folder",
        paper=True,
    )
    head_hidden: int = opt(256, "GAP -> Dense(head_hidden, ReLU) -> Dense(1)", paper=True, minimum=1)
    dropout: float = opt(0.0, "dropout before the output layer", paper=False, minimum=0.0, maximum=0.99)


@dataclass
class LossConfig:
    name: str = "bce"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    name: Optimizer = opt("adam", "adam | adamw | sgd", paper=True)
    lr: float = opt(1e-5, "learning rate", paper=True)
    betas: tuple[float, float] = opt((0.7, 0.999), "Adam's beta_1, beta_2", paper=True)
    weight_decay: float = opt(0.0, "adamw / sgd weight decay")
    momentum: float = opt(0.9, "sgd momentum")
    scheduler: Scheduler = opt("none", "none | cosine | plateau", paper=True)


@dataclass
class TrainConfig:
    recipe: RecipeName = opt(
        "auto",
        "paper: the optimizer and augmentation as configured; scratch: what makes random weights learn on "
        "small sets (README 'Training from scratch'); auto: scratch for model.weights none, else paper",
    )
    epochs: int = opt(30, "maximum epochs (early stopping on validation weighted F1)", paper=False, minimum=1)
    batch_size: int = opt(32, "images per step", paper=True, minimum=1)
    precision: Precision = opt(
        "auto", "auto: fp32 on CPUs; GPUs: mixed bf16 from compute capability 8, fp16 on 7.x"
    )
    seed: int = opt(42, "training seed (the workflow's grid.seeds set it per job; here: the splits)")
    deterministic: bool = opt(False, "TensorFlow op determinism: bit-repeatable runs and resumes")
    balance: BalanceMode = opt(
        "none", "oversample: to oversample_to; class_weight: Keras class weights", workflow=False
    )
    oversample_to: TargetRule | dict[str, int] | None = opt(
        None,
        "samples per class: a {class: count} mapping (the paper's), auto (the paper's counts on C-NMC-sized "
        "all / hem data, else balance) or balance (null too: every class to the largest's count)",
        workflow=False,
    )
    patience: int | None = opt(8, "early-stopping patience in epochs (null: none)", paper=False, minimum=1)
    devices: str = opt(
        "auto", "one job's devices: auto (its GPUs; MirroredStrategy when > 1), a count, ids, cpu, cpu:N"
    )
    jit_compile: bool | None = opt(None, "XLA (null: off on CPU, Keras' choice on GPU)")
    run_eagerly: bool = opt(False, "no graph tracing: faster for a dozen steps")
    max_steps_per_epoch: int | None = opt(None, "cap on steps per epoch (smoke runs)", minimum=1)
    state_dir: str | None = opt(None, "resume state (default: <out>.state)", workflow=False, runtime=True)
    progress: bool = opt(True, "a progress bar", workflow=False, runtime=True)

    def __post_init__(self) -> None:
        from leukoscope.precision import canonical

        self.precision = canonical(self.precision, "train.precision")  # type: ignore[assignment]


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out: str = opt("runs/latest", "the run's folder", workflow=False, runtime=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(plain(self.to_dict()), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        loss = data.get("loss")
        if isinstance(loss, dict) and isinstance(loss.get("params"), dict):
            loss["params"] = yaml_on_key(loss["params"])
        return _build(cls, data, "")

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(load_yaml(path))

    def override(self, dotted: dict[str, Any]) -> RunConfig:
        """Apply `{"optim.lr": 1e-4, ...}` (CLI flags); None values are skipped."""
        merged = self.to_dict()
        for key, value in dotted.items():
            if value is None:
                continue
            if not tree.has(merged, key):
                raise ConfigError(f"unknown setting {key!r}")
            tree.put(merged, key, value)
        return RunConfig.from_dict(merged)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path=path, hint="pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config is not valid YAML ({exc.__class__.__name__})", path=path) from None
    if not isinstance(data, dict):
        raise ConfigError("config must be a YAML mapping", path=path)
    return data


def write_resolved_config(
    out: str | Path, config: dict[str, Any], base: str | Path, files: list[str]
) -> Path:
    """The workflow's `resolved_config` rule: `config` as YAML, headed by where it came from (`base`, then
    the other `files` over it, then the schema's defaults), so a run's results say what it was asked."""
    from leukoscope._io import write_text

    base = Path(base).resolve()
    overrides = [f for f in files if Path(f).resolve() != base]
    header = (
        f"# Resolved from {base}, then {', '.join(overrides) or 'no other file'} over it, then the "
        "defaults of workflow/schemas/config.schema.yaml\n"
    )
    return write_text(out, header + yaml.safe_dump(dict(config), sort_keys=False))


def yaml_on_key(params: dict[Any, Any]) -> dict[Any, Any]:
    """YAML 1.1 reads an unquoted `on:` key as the boolean True: the hinge losses' `on` parameter."""
    return {("on" if k is True else k): v for k, v in params.items()}


def _build(cls: type, data: dict[str, Any], prefix: str, *, workflow: bool = False) -> Any:
    """`cls` from a mapping, checked on the way: names, types, choices and the bounds `opt` declares;
    `workflow`: config.yaml's keys only (fields the rules fill in are refused). The first problem is one
    ConfigError line naming the dotted key."""
    if not isinstance(data, dict):
        raise ConfigError(f"setting {prefix.rstrip('.') or 'config'!r} must be a mapping")
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls) if not workflow or f.metadata.get("workflow", True)}
    unknown = sorted(set(data) - set(by_name))
    if unknown:
        raise ConfigError(
            f"unknown setting '{prefix}{unknown[0]}'",
            hint=f"check the spelling; known: {', '.join(sorted(by_name))}",
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        tp = hints[name]
        kwargs[name] = (
            _build(tp, value, key + ".", workflow=workflow) if is_dataclass(tp) else _coerce(tp, value, key)
        )
        _check_bounds(by_name[name].metadata, kwargs[name], key)
    return cls(**kwargs)


def _check_bounds(meta: Any, value: Any, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise ConfigError(f"{key}: {value} is less than the minimum of {meta['minimum']}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise ConfigError(f"{key}: {value} is greater than the maximum of {meta['maximum']}")


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if is_dataclass(tp):
        return _build(tp, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if errors else ConfigError(f"setting {key!r} has an invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"setting {key!r} is {value!r}", hint=f"choose one of: {', '.join(map(str, args))}"
            )
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"setting {key!r} needs {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, key) for a, v in zip(args, value, strict=True))
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"setting {key!r} must be a list, got {value!r}")
        return [_coerce(args[0], v, key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"setting {key!r} must be a mapping, got {value!r}")
        return {str(k): (_coerce(args[1], v, key) if args[1] is not Any else v) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"setting {key!r} must be true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = tp(value)
            except (TypeError, ValueError):
                raise ConfigError(f"setting {key!r} must be a number, got {value!r}") from None
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"setting {key!r} must be a whole number, got {value!r}")
        return tp(value)
    if tp is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(f"setting {key!r} must be text, got {value!r}")
        return str(value)
    return value


def setting_keys(cls: type | None = None, prefix: str = "") -> dict[str, Any]:
    """Every leaf setting of `cls` (default RunConfig): dotted key -> its dataclass field."""
    cls = cls or RunConfig
    keys: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            keys |= setting_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys[f"{prefix}{f.name}"] = f
    return keys


def runtime_keys() -> list[str]:
    """Dotted keys of the fields marked `runtime` (where or how fast a run goes, not what it computes)."""
    return [key for key, f in setting_keys().items() if f.metadata.get("runtime")]
