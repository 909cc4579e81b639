"""The model card: everything needed to use a trained model again, saved beside the model.

A model folder (a run directory, `results/models/<backbone>/<loss>/`, or an export) holds
`model_card.json` and `model.keras` (Keras 3's format, loaded with safe_mode=True: no Python code runs).
Inference, serving, export and evaluation rebuild the exact preprocessing from the card alone; the model
itself takes 0-255 RGB pixels (its first layer standardises them, see `models.layers`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leukoscope import __version__
from leukoscope._io import atomic_path, write_json
from leukoscope.config import PreprocessConfig, _build
from leukoscope.errors import ModelError

CARD_NAME = "model_card.json"
WEIGHTS_NAME = "model.keras"


@dataclass
class ModelCard:
    backbone: str
    class_names: list[str]  # index order of the model's outputs; two classes: output = P(positive_class)
    preprocess: PreprocessConfig  # with mean/std resolved
    weights_source: str = "none"
    positive_class: str | None = None  # two classes only
    head_hidden: int = 256
    head: str = "paper"  # the one head there is (models.factory.paper_head); a field of model_card.json
    dropout: float = 0.0
    input_mode: str = ""  # the backbone's own input convention (raw / torch / tf / caffe)
    input_normalization: str = ""  # in words: what the model's first layer does to the pixels
    feature_layer: str = ""  # the backbone's last feature map (Grad-CAM)
    loss: dict[str, Any] = field(default_factory=dict)  # name + params it was trained with
    recipe: dict[str, Any] = field(default_factory=dict)  # train.recipe resolved: name, why, what it set
    threshold: float = 0.5  # two classes: P(positive) >= threshold -> positive
    temperature: float = 1.0  # logits are divided by this before sigmoid/softmax (calibration)
    data_summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    model_id: str = ""
    framework: dict[str, str] = field(default_factory=dict)  # keras / tensorflow versions
    leukoscope_version: str = __version__

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def positive_index(self) -> int:
        """Index in class_names of the class the sigmoid output stands for (two classes)."""
        return self.class_names.index(self.positive_class) if self.positive_class else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        data = dict(data)
        data["preprocess"] = _build(PreprocessConfig, data.get("preprocess", {}), "preprocess.")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, directory: str | Path) -> Path:
        return write_json(Path(directory) / CARD_NAME, self.to_dict())

    @classmethod
    def load(cls, directory: str | Path) -> ModelCard:
        path = Path(directory) / CARD_NAME
        if not path.is_file():
            raise ModelError(
                "no model card here", path=directory, hint="pass a run directory made by `leukoscope train`"
            )
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise ModelError(f"model card is damaged ({exc})", path=path) from None


def save_model(directory: str | Path, model: Any, card: ModelCard) -> Path:
    """Write `model.keras` (atomically, without optimizer state) and the card; returns the directory."""
    directory = Path(directory)
    card.framework = card.framework or framework_versions()
    with atomic_path(directory / WEIGHTS_NAME, keep_suffix=True) as tmp:
        model.save(str(tmp))
    card.save(directory)
    return directory


def framework_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"keras": keras.__version__, "tensorflow": tf.__version__}


def load_keras(path: str | Path) -> Any:
    """A `.keras` file with safe_mode=True (no lambda code), uncompiled; damaged files are one line."""
    import keras

    import leukoscope.models.layers  # noqa: F401  (registers LeukoScope's layers)

    path = Path(path)
    if not path.is_file():
        raise ModelError("model file is missing", path=path, hint="train again or copy model.keras")
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:
        raise ModelError(
            f"cannot load the model ({type(exc).__name__}: {str(exc)[:200]})", path=path
        ) from None


def model_folder(path: str | Path) -> Path:
    path = Path(path)
    return path.parent if path.is_file() else path


def load_model(directory: str | Path) -> tuple[Any, ModelCard]:
    """(Keras model returning logits, its card) from a model folder or its model.keras."""
    directory = model_folder(directory)
    card = ModelCard.load(directory)
    return load_keras(directory / WEIGHTS_NAME), card
