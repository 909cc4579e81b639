"""The ensemble spec (`ensemble.json`): which runs, how their probabilities combine, the decision threshold.

A spec is what `leukoscope ensemble` and the workflow's ensemble rule write and what `predict`, `evaluate`
and `serve` load like a model (`infer.ensemble.load_ensemble`). Member paths are stored relative to the
spec so the folder can move with its runs; keys this version does not know are ignored, so a spec written
by an earlier version still loads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leukoscope import __version__
from leukoscope._io import write_json
from leukoscope.errors import ConfigError, ModelError
from leukoscope.models.card import CARD_NAME, ModelCard

ENSEMBLE_NAME = "ensemble.json"
SPEC_KIND = "leukoscope-ensemble"
METHODS = ("mean", "weighted", "mc-dropout")
CONFIDENCES = ("inverse-variance", "entropy")


@dataclass
class EnsembleSpec:
    members: list[str]  # run directories; relative paths are relative to the spec's folder
    class_names: list[str]
    method: str = "mean"
    weights: list[float] | None = None  # `weighted` only; sums to 1
    positive_class: str | None = None
    threshold: float = 0.5
    mc_samples: int = 16
    mc_p: float = 0.2
    confidence: str = "inverse-variance"
    seed: int = 0
    tta: str = "none"  # what the spec was validated with (predict/evaluate choose their own)
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    kind: str = SPEC_KIND
    leukoscope_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | Path = "") -> EnsembleSpec:
        if data.get("kind") != SPEC_KIND or not isinstance(data.get("members"), list):
            raise ModelError("not a LeukoScope ensemble spec", path=path)
        known = set(cls.__dataclass_fields__)
        spec = cls(**{k: v for k, v in data.items() if k in known})
        check_spec(spec, path)
        return spec


def check_spec(spec: EnsembleSpec, path: str | Path = "") -> None:
    if spec.method not in METHODS:
        raise ConfigError(
            f"unknown ensemble method {spec.method!r}", hint=f"choose one of: {', '.join(METHODS)}"
        )
    if spec.confidence not in CONFIDENCES:
        raise ConfigError(
            f"unknown confidence {spec.confidence!r}", hint=f"choose one of: {', '.join(CONFIDENCES)}"
        )
    if len(spec.members) < 1:
        raise ModelError("an ensemble needs at least one member", path=path)
    if spec.method == "weighted":
        w = np.asarray(spec.weights if spec.weights is not None else [], dtype=float)
        if w.shape != (len(spec.members),) or (w < 0).any() or not np.isclose(w.sum(), 1.0, atol=1e-6):
            raise ModelError(
                "ensemble weights must be one non-negative number per member, summing to 1", path=path
            )
    if spec.mc_samples < 2 or not 0.0 < spec.mc_p < 1.0:
        raise ConfigError("mc-dropout needs mc_samples >= 2 and 0 < mc_p < 1")


def spec_file(path: str | Path) -> Path:
    path = Path(path)
    return path / ENSEMBLE_NAME if path.is_dir() else path


def is_ensemble_spec(path: str | Path) -> bool:
    """A folder with `ensemble.json` (and no model card) or a JSON file of kind leukoscope-ensemble."""
    path = Path(path)
    if path.is_dir():
        return (path / ENSEMBLE_NAME).is_file() and not (path / CARD_NAME).is_file()
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("kind") == SPEC_KIND
    except (OSError, ValueError, AttributeError):
        return False


def read_spec(path: str | Path) -> tuple[EnsembleSpec, Path]:
    """(spec, its file); member paths are resolved against the file's folder."""
    file = spec_file(path)
    if not file.is_file():
        raise ModelError("ensemble spec not found", path=file, hint="make one with `leukoscope ensemble`")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"ensemble spec is damaged ({exc})", path=file) from None
    spec = EnsembleSpec.from_dict(data, file)
    spec.members = [str((file.parent / m).resolve()) for m in spec.members]
    return spec, file


def save_spec(path: str | Path, spec: EnsembleSpec) -> Path:
    """Write the spec atomically; members are stored relative to it so the folder can move with its runs."""
    file = Path(path) if Path(path).suffix.lower() == ".json" else Path(path) / ENSEMBLE_NAME
    data = spec.to_dict()
    data["members"] = [_relative(m, file.parent) for m in spec.members]
    return write_json(file, data)


def _relative(member: str, base: Path) -> str:
    try:
        return os.path.relpath(Path(member).resolve(), base.resolve())
    except ValueError:  # another drive (Windows)
        return str(Path(member).resolve())


def new_spec(run_dirs: Sequence[str | Path], method: str = "mean", **options: Any) -> EnsembleSpec:
    """A spec whose class order and positive class come from the first member's card."""
    if not run_dirs:
        raise ConfigError("an ensemble needs at least one run directory")
    first = ModelCard.load(run_dirs[0])
    if method == "weighted" and options.get("weights") is None:
        options["weights"] = [1.0 / len(run_dirs)] * len(run_dirs)  # until fitted on validation
    spec = EnsembleSpec(
        members=[str(Path(r).resolve()) for r in run_dirs],
        class_names=list(first.class_names),
        method=method,
        positive_class=first.positive_class if first.num_classes == 2 else None,
        **options,
    )
    check_spec(spec)
    return spec
