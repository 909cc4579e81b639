"""The model card: everything needed to use a trained model again, saved beside its weights.

A run directory (or an exported model folder) holds `model_card.json` and `model.safetensors`.
Inference, serving, export and evaluation rebuild the exact preprocessing from the card alone.
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
WEIGHTS_NAME = "model.safetensors"


@dataclass
class ModelCard:
    backbone: str
    class_names: list[str]  # index order of the model's outputs; two classes: output = P(positive_class)
    preprocess: PreprocessConfig  # with mean/std resolved
    weights_source: str = "none"
    positive_class: str | None = None  # two classes only
    head_hidden: int = 256
    head: str = "paper"  # name in leukoscope.models.factory.HEADS
    dropout: float = 0.0
    threshold: float = 0.5  # two classes: P(positive) >= threshold -> positive
    temperature: float = 1.0  # logits are divided by this before sigmoid/softmax (calibration)
    data_summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    model_id: str = ""
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
    """Write weights (safetensors, atomically) and the card; returns the directory."""
    from safetensors.torch import save_file

    directory = Path(directory)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp))
    card.save(directory)
    return directory


def load_model(directory: str | Path) -> tuple[Any, ModelCard]:
    """Rebuild the classifier from a card + safetensors weights (no pickle), in eval mode."""
    from safetensors.torch import load_file

    from leukoscope.models.factory import create_classifier

    directory = Path(directory)
    if directory.is_file():
        directory = directory.parent
    card = ModelCard.load(directory)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelError(
            "model weights are missing", path=weights, hint="train again or copy model.safetensors"
        )
    model = create_classifier(
        card.backbone,
        card.num_classes,
        weights="none",
        head_hidden=card.head_hidden,
        dropout=card.dropout,
        head=card.head,
    )
    try:
        model.load_state_dict(load_file(str(weights)))
    except Exception as exc:
        raise ModelError(f"weights do not fit backbone {card.backbone!r} ({exc})", path=weights) from None
    return model.eval(), card
