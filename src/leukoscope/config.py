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

from leukoscope.errors import ConfigError

CropMode = Literal["cell", "center", "none", "auto"]
NormalizeMode = Literal["dataset", "backbone"]
BalanceMode = Literal["none", "oversample", "class_weight"]
Precision = Literal["auto", "fp32", "bf16", "fp16", "32", "16"]  # leukoscope.precision; 32 / 16: old names
Optimizer = Literal["adam", "adamw", "sgd"]
Scheduler = Literal["none", "cosine", "plateau"]


@dataclass
class PreprocessConfig:
    """Deterministic per-image steps; their output (uint8, size x size) is what the cache stores."""

    crop: CropMode = "cell"  # cell: tight box of non-black pixels; center: centre-cell crop; none; auto: by
    # the background (`leukoscope.data.background`), resolved before any image is preprocessed
    image_size: int = 224  # not in the paper: the ImageNet size of DenseNet201
    black_threshold: int = 15  # a pixel is background when max(R,G,B) <= this (C-NMC: cell on black)
    center_fraction: float = 0.7  # crop="center": side of the centred square, fraction of the shorter side
    clahe: bool = False  # apply CLAHE once, in preprocessing; AugmentConfig.clahe_p is the random CLAHE
    clahe_clip: float = 2.0
    clahe_grid: int = 8
    normalize: NormalizeMode = "dataset"  # dataset: training-split mean/std (the paper); backbone: its own
    mean: tuple[float, float, float] | None = None  # filled in from the training split (in [0, 1] units)
    std: tuple[float, float, float] | None = None


@dataclass
class AugmentConfig:
    """Random train-time augmentation: NumPy + OpenCV inside tf.data, seeded by (seed, epoch, sample)."""

    hflip: bool = True
    vflip: bool = True
    rotation: float = 90.0  # degrees, uniform in [-rotation, rotation]
    clahe_p: float = 0.5  # probability of a random CLAHE (clip limit uniform in [1, 4])
    enabled: bool = True


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
    cache_dir: str | None = None  # preprocessing cache (default: ~/.cache/leukoscope)
    num_workers: int = 0  # parallel tf.data calls for decoding/augmentation (0: tf.data.AUTOTUNE)


@dataclass
class ModelConfig:
    backbone: str = "densenet201"  # any keras.applications model, case-insensitive (efficientnetb2, ...)
    weights: str = "imagenet"  # imagenet (Keras cache) | none | Keras' notop .h5 | .keras / .weights.h5
    head_hidden: int = 256  # the paper's head: GAP -> Dense(256, ReLU) -> Dense(1, sigmoid)
    dropout: float = 0.0  # dropout before the output layer (not in the paper)


@dataclass
class LossConfig:
    name: str = "bce"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    name: Optimizer = "adam"
    lr: float = 1e-5
    betas: tuple[float, float] = (0.7, 0.999)
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: Scheduler = "none"


@dataclass
class TrainConfig:
    epochs: int = 30  # not in the paper; early stopping on validation weighted F1 ends most runs sooner
    batch_size: int = 32
    precision: Precision = "auto"  # auto: fp32 on CPUs; GPUs: bf16 from cc 8, fp16 on 7.x (precision.py)
    seed: int = 42
    deterministic: bool = False  # tf op determinism: bit-repeatable runs and resumes, somewhat slower
    balance: BalanceMode = "none"  # oversample: to oversample_to (the paper); class_weight: Keras weights
    oversample_to: dict[str, int] | None = None  # e.g. {"hem": 10778, "all": 9272} (the paper's 20,050)
    patience: int | None = 8  # early stopping on validation weighted F1 (not in the paper)
    devices: str = "auto"  # auto: every visible GPU (MirroredStrategy when > 1) | a count | ids | cpu:N
    jit_compile: bool | None = None  # XLA; None: off on CPU (measured 6-40x slower here), Keras' auto on GPU
    run_eagerly: bool = False  # skip graph tracing (~100 s for DenseNet201): faster for a dozen steps
    max_steps_per_epoch: int | None = None  # smoke runs and benchmarks
    state_dir: str | None = None  # resume state (default: <out>.state), outside the run's own outputs
    progress: bool = True

    def __post_init__(self) -> None:
        from leukoscope.precision import ALIASES

        self.precision = ALIASES.get(self.precision, self.precision)  # type: ignore[assignment]


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out: str = "runs/latest"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(_plain(self.to_dict()), sort_keys=False)

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
            node = merged
            *parents, leaf = key.split(".")
            for part in parents:
                node = node[part]
            if leaf not in node:
                raise ConfigError(f"unknown setting {key!r}")
            node[leaf] = value
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


def yaml_on_key(params: dict[Any, Any]) -> dict[Any, Any]:
    """YAML 1.1 reads an unquoted `on:` key as the boolean True: the hinge losses' `on` parameter."""
    return {("on" if k is True else k): v for k, v in params.items()}


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"setting {prefix.rstrip('.') or 'config'!r} must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting {prefix}{unknown[0]!r}", hint=f"known: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{prefix}{name}")
    return cls(**kwargs)


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


def replace(obj: Any, **changes: Any) -> Any:
    return dataclasses.replace(obj, **changes)
