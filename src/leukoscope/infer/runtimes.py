"""The exported backends: onnxruntime (`.onnx`), LiteRT (`.tflite`) and a TensorFlow SavedModel.

Each runs the export's `probabilities` output (temperature baked in at export time) in fp32 on the CPU.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from leukoscope.errors import ConfigError, ModelError
from leukoscope.infer.batches import BATCH_SIZE, predict_batched
from leukoscope.models.card import ModelCard

RUNTIMES = {"onnx": "onnxruntime", "tflite": "ai_edge_litert"}
INSTALL_HINT = "pip install 'leukoscope[deploy]' (tf2onnx, onnxruntime, ai-edge-litert)"


class OnnxPredictor:
    """An exported model on onnxruntime's CPU provider; the card comes from its metadata unless given."""

    backend = "onnx"
    precision = "fp32"

    def __init__(
        self, model: str | Path | bytes, *, card: ModelCard | None = None, name: str | None = None
    ) -> None:
        import onnxruntime as ort

        source = model if isinstance(model, bytes) else str(model)
        name = name or ("<onnx bytes>" if isinstance(model, bytes) else str(model))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"not a loadable ONNX model ({type(exc).__name__})", path=name) from None
        self.card = card or read_onnx_card(self.session.get_modelmeta().custom_metadata_map, name)
        self.model_id = self.card.model_id or Path(name).stem
        self.input_name = self.session.get_inputs()[0].name

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        return predict_batched(self._run, images, 64, width=self.card.num_classes).astype(np.float32)

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: chunk.astype(np.float32)})[0]


def read_onnx_card(metadata: dict[str, str], path: str | Path) -> ModelCard:
    import json

    from leukoscope.infer.export import ONNX_CARD_KEY

    raw = metadata.get(ONNX_CARD_KEY)
    if raw is None:
        raise ModelError(
            "ONNX file has no LeukoScope model card", path=path, hint="export it with `leukoscope export`"
        )
    try:
        return ModelCard.from_dict(json.loads(raw))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"model card in the ONNX file is damaged ({exc})", path=path) from None


class TFLitePredictor:
    """An exported model on LiteRT (XNNPACK); one interpreter, so calls are serialised with a lock."""

    backend = "tflite"
    precision = "fp32"

    def __init__(self, model: str | Path | bytes, *, card: ModelCard, name: str | None = None) -> None:
        import os
        import threading

        from ai_edge_litert.interpreter import Interpreter

        name = name or ("<tflite bytes>" if isinstance(model, bytes) else str(model))
        threads = max(1, os.cpu_count() or 1)  # LiteRT's own default is one thread
        try:
            if isinstance(model, bytes):
                self.interpreter = Interpreter(model_content=model, num_threads=threads)
            else:
                self.interpreter = Interpreter(model_path=str(model), num_threads=threads)
        except Exception as exc:
            raise ModelError(f"not a loadable TFLite model ({type(exc).__name__})", path=name) from None
        self.card = card
        self.model_id = card.model_id or Path(name).stem
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self._shape: tuple[int, ...] = ()
        self._lock = threading.Lock()

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        return predict_batched(self._run, images, BATCH_SIZE, width=self.card.num_classes).astype(np.float32)

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        with self._lock:
            if chunk.shape != self._shape:
                self.interpreter.resize_tensor_input(self._input, list(chunk.shape))
                self.interpreter.allocate_tensors()
                self._shape = chunk.shape
            self.interpreter.set_tensor(self._input, chunk.astype(np.float32))
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self._output).copy()


class SavedModelPredictor:
    """A TensorFlow SavedModel made by `leukoscope export --format saved_model` (its `serving_default`)."""

    backend = "saved_model"
    precision = "fp32"

    def __init__(self, folder: Path, card: ModelCard) -> None:
        import tensorflow as tf

        try:
            self._fn = tf.saved_model.load(str(folder)).signatures["serving_default"]
        except Exception as exc:
            raise ModelError(f"not a loadable SavedModel ({type(exc).__name__})", path=folder) from None
        self.card = card
        self.model_id = card.model_id or folder.name

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        return predict_batched(self._run, images, BATCH_SIZE, width=self.card.num_classes).astype(np.float32)

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self._fn(pixels=tf.constant(chunk, tf.float32))["probabilities"].numpy()


def runtime_available(backend: str) -> bool:
    return backend not in RUNTIMES or importlib.util.find_spec(RUNTIMES[backend]) is not None


def require_runtime(backend: str) -> None:
    if not runtime_available(backend):
        raise ConfigError(f"the {backend} backend needs {RUNTIMES[backend]}, which is not installed",
                          hint=INSTALL_HINT)  # fmt: skip
