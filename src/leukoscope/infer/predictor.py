"""One interface over every kind of saved model: a run directory (torch) or an exported `.onnx` file.

`load_predictor(path)` picks the loader from what `path` is, so `predict`, `serve` and evaluation never
care which backend runs; an ensemble spec is one more entry in `PREDICTOR_LOADERS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from leukoscope.errors import ConfigError, ModelError
from leukoscope.infer.tta import tta_predict
from leukoscope.models.card import CARD_NAME, WEIGHTS_NAME, ModelCard
from leukoscope.registry import Registry

BACKENDS = ("auto", "torch", "onnx")
ONNX_CARD_KEY = "leukoscope.model_card"


class Predictor(Protocol):
    """What every backend offers: the card, and probabilities for preprocessed uint8 NHWC images."""

    card: ModelCard
    model_id: str
    backend: str  # "torch" | "onnx"
    precision: str  # "fp32" | "bf16"

    def predict_arrays(self, images: np.ndarray) -> np.ndarray: ...


def preprocess_rgb(rgb: np.ndarray, card: ModelCard) -> np.ndarray:
    """The card's deterministic preprocessing: what the model saw in training."""
    from leukoscope.preprocess.pipeline import preprocess_image

    return preprocess_image(rgb, card.preprocess)


def predict_with_tta(predictor: Predictor, images: np.ndarray, tta: str = "none") -> np.ndarray:
    return tta_predict(predictor.predict_arrays, images, tta)


class TorchPredictor:
    """A PyTorch model through `InferenceEngine` (bf16 + channels_last where the CPU is fast at it)."""

    backend = "torch"

    def __init__(
        self, model: Any, card: ModelCard, *, model_id: str, precision: str = "auto", compile: bool = False
    ) -> None:
        from leukoscope.infer.engine import InferenceEngine

        self.model = model
        self.card = card
        self.model_id = model_id
        self.engine = InferenceEngine(model, card, precision=precision, compile=compile)
        self.precision = self.engine.precision

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        return self.engine.predict_arrays(images)


class OnnxPredictor:
    """An exported model on onnxruntime's CPU provider; normalisation comes from the embedded card."""

    backend = "onnx"
    precision = "fp32"

    def __init__(self, model: str | Path | bytes, *, name: str | None = None) -> None:
        import onnxruntime as ort

        source = model if isinstance(model, bytes) else str(model)
        name = name or ("<onnx bytes>" if isinstance(model, bytes) else str(model))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"not a loadable ONNX model ({type(exc).__name__})", path=name) from None
        self.card = read_onnx_card(self.session.get_modelmeta().custom_metadata_map, name)
        self.model_id = self.card.model_id or Path(name).stem
        self.input_name = self.session.get_inputs()[0].name
        pre = self.card.preprocess
        self._mean = np.asarray(pre.mean, dtype=np.float32).reshape(1, 3, 1, 1) * 255.0
        self._std = np.asarray(pre.std, dtype=np.float32).reshape(1, 3, 1, 1) * 255.0

    def predict_arrays(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if len(images) == 0:
            return np.zeros((0, self.card.num_classes), dtype=np.float32)
        out = [self._run(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        return np.concatenate(out).astype(np.float32)

    def _run(self, images: np.ndarray) -> np.ndarray:
        x = (images.transpose(0, 3, 1, 2).astype(np.float32) - self._mean) / self._std
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0]


def read_onnx_card(metadata: dict[str, str], path: str | Path) -> ModelCard:
    raw = metadata.get(ONNX_CARD_KEY)
    if raw is None:
        raise ModelError(
            "ONNX file has no LeukoScope model card", path=path, hint="export it with `leukoscope export`"
        )
    try:
        card = ModelCard.from_dict(json.loads(raw))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"model card in the ONNX file is damaged ({exc})", path=path) from None
    if card.preprocess.mean is None or card.preprocess.std is None:
        raise ModelError("model card in the ONNX file has no normalisation mean/std", path=path)
    return card


@dataclass(frozen=True)
class ModelFormat:
    """How to recognise a saved model and which backends can run it (the first is the default)."""

    matches: Callable[[Path], bool]
    loaders: dict[str, Callable[[Path, str, bool], Predictor]]  # (path, precision, compile)


MODEL_FORMATS: Registry[ModelFormat] = Registry("model format")


def load_predictor(
    path: str | Path, *, backend: str = "auto", precision: str = "auto", compile: bool = False
) -> Predictor:
    """The predictor for a run directory (torch, or onnx exported in memory), an ensemble or a `.onnx` file.

    `compile`: torch.compile the PyTorch model(s) (fastest for long batches; ~10 s to compile).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}", hint=f"choose one of: {', '.join(BACKENDS)}")
    path = Path(path)
    if not path.exists():
        raise ModelError("model not found", path=path, hint="pass a run directory or an exported .onnx file")
    for name in MODEL_FORMATS:
        fmt = MODEL_FORMATS.get(name)
        if not fmt.matches(path):
            continue
        chosen = next(iter(fmt.loaders)) if backend == "auto" else backend
        if chosen not in fmt.loaders:
            raise ConfigError(
                f"a {name} model cannot run on the {chosen} backend",
                path=path,
                hint=f"use --backend {' or '.join(fmt.loaders)}",
            )
        if compile and chosen != "torch":
            raise ConfigError("--compile applies to the torch backend only", hint="drop --compile for onnx")
        return fmt.loaders[chosen](path, precision, compile)
    raise ModelError(
        "not a LeukoScope model",
        path=path,
        hint=f"pass a folder with {CARD_NAME} + {WEIGHTS_NAME}, an ensemble.json or an exported .onnx file",
    )


def _is_model_dir(path: Path) -> bool:
    folder = path if path.is_dir() else path.parent
    return (folder / CARD_NAME).is_file() and path.suffix.lower() != ".onnx"


def _load_torch(path: Path, precision: str, compile: bool = False) -> Predictor:
    from leukoscope.models.card import load_model

    model, card = load_model(path)
    folder = path if path.is_dir() else path.parent
    return TorchPredictor(
        model, card, model_id=card.model_id or folder.name, precision=precision, compile=compile
    )


def _check_fp32(precision: str) -> None:
    if precision not in ("auto", "fp32"):
        raise ConfigError(
            f"the ONNX backend runs in fp32, not {precision}", hint="use --precision auto or fp32"
        )


def _load_onnx_file(path: Path, precision: str, compile: bool = False) -> Predictor:
    _check_fp32(precision)
    return OnnxPredictor(path)


def _load_dir_as_onnx(path: Path, precision: str, compile: bool = False) -> Predictor:
    """Export in memory so a run directory can be checked on onnxruntime without a separate export step."""
    from leukoscope.infer.export import export_onnx_bytes
    from leukoscope.models.card import load_model

    _check_fp32(precision)
    model, card = load_model(path)
    folder = path if path.is_dir() else path.parent
    card.model_id = card.model_id or folder.name
    return OnnxPredictor(export_onnx_bytes(model, card), name=str(path))


def _is_ensemble(path: Path) -> bool:
    from leukoscope.experiments.ensemble import is_ensemble_spec

    return is_ensemble_spec(path)


def _load_ensemble(path: Path, precision: str, compile: bool = False) -> Predictor:
    from leukoscope.experiments.ensemble import load_ensemble

    return load_ensemble(path, precision, compile=compile)


# Checked in name order: "ensemble" (a folder with ensemble.json and no card, or such a .json file),
# "onnx", then "run directory".
MODEL_FORMATS.register("ensemble")(ModelFormat(matches=_is_ensemble, loaders={"torch": _load_ensemble}))
MODEL_FORMATS.register("run directory")(
    ModelFormat(matches=_is_model_dir, loaders={"torch": _load_torch, "onnx": _load_dir_as_onnx})
)
MODEL_FORMATS.register("onnx")(
    ModelFormat(
        matches=lambda p: p.is_file() and p.suffix.lower() == ".onnx", loaders={"onnx": _load_onnx_file}
    )
)
