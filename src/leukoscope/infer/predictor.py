"""One interface over every kind of saved model, so `predict`, `evaluate`, `serve` and ensembles never care
which runtime does the work.

`load_predictor(path)` takes a model folder (`model_card.json` + `model.keras`, e.g. a run directory or the
workflow's `results/models/<backbone>/<loss>/`), its `model.keras`, an ensemble spec, or an export made by
`leukoscope export` (`.onnx`, `.tflite`, a SavedModel folder). Every predictor maps preprocessed uint8 NHWC
images to (N, num_classes) float32 probabilities in `card.class_names` order, temperature included.

Backends: `keras` (TensorFlow, the model as trained), `onnx` (onnxruntime) and `tflite` (LiteRT). `auto`
takes, for a model folder, an up-to-date export beside `model.keras` whose runtime imports, in the order
`AUTO_ORDER` (fastest first as measured on this CPU: both exports beat Keras 1.5-3x; see `AUTO_ORDER`),
else Keras. An export is up to date when `exports.json` says it was made from this very `model.keras`
(sha256) with the card's temperature and classes; a stale one is skipped with a warning. With
`cache_export` (what `predict` and `serve` pass), a folder without an up-to-date export gets model.tflite
built beside model.keras once (`export.build_cache`), so the default path is the fast one. Otherwise
converting happens only in memory, when a backend is asked for explicitly and no export is there.

Precision (`leukoscope.precision`): `auto` is fp32 on every machine, so a model gives the same
probabilities everywhere; bf16 / fp16 run the Keras model through `mixed_precision_model`.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from leukoscope.errors import ConfigError, ModelError
from leukoscope.infer.tta import tta_predict
from leukoscope.models.card import CARD_NAME, WEIGHTS_NAME, ModelCard
from leukoscope.precision import POLICIES, canonical, inference_precision

log = logging.getLogger(__name__)

BACKENDS = ("auto", "keras", "tflite", "onnx")
# `auto` for a model folder: exports tried in this order before Keras. Measured here (2 shared cores,
# AVX-512, batch 32, one process per model, backends alternating, median images/s of 6 rounds; the host
# was loaded by other jobs, load average ~6): EfficientNetB0@224 keras 8.6 / tflite 25 / onnx 15;
# EfficientNetB2@260 keras 5.0 / tflite 10.4 / onnx 7.5; DenseNet201@224 keras 1.7 / tflite 4.4 / onnx
# 3.2; simplecnn@64 keras 600 / tflite 1190 / onnx 640. Both exports beat Keras in every round; LiteRT won
# the medians on all four. In an earlier, less loaded run onnxruntime overtook LiteRT on DenseNet201
# (11.7 vs 6.2) and EfficientNetB0 (53 vs 33): with both exports present, keep the one you prefer.
AUTO_ORDER = ("tflite", "onnx")
RUNTIMES = {"onnx": "onnxruntime", "tflite": "ai_edge_litert"}
INSTALL_HINT = "pip install 'leukoscope[deploy]' (tf2onnx, onnxruntime, ai-edge-litert)"
BATCH_SIZE = 32


class Predictor(Protocol):
    """What every backend offers: the card, and probabilities for preprocessed uint8 NHWC images."""

    card: ModelCard
    model_id: str
    backend: str  # "keras" | "onnx" | "tflite" | "saved_model" (an ensemble: its members')
    precision: str  # "fp32" | "bf16"

    def predict_arrays(self, images: np.ndarray) -> np.ndarray: ...


def preprocess_rgb(rgb: np.ndarray, card: ModelCard) -> np.ndarray:
    """The card's deterministic preprocessing: what the model saw in training."""
    from leukoscope.preprocess.pipeline import preprocess_image

    return preprocess_image(rgb, card.preprocess)


def predict_with_tta(predictor: Predictor, images: np.ndarray, tta: str = "none") -> np.ndarray:
    return tta_predict(predictor.predict_arrays, images, tta)


def logits_to_probs(logits: np.ndarray, card: ModelCard, temperature: float | None = None) -> np.ndarray:
    """(N,) two-class logits or (N, C) logits -> (N, num_classes) probabilities in class_names order.

    The same arithmetic as the exported `ClassProbabilities` layer; the temperature is read from the card
    at each call, so a calibrated card takes effect without reloading the model.
    """
    z = np.asarray(logits, dtype=np.float64) / float(card.temperature if temperature is None else temperature)
    if z.ndim == 2 and z.shape[1] == 1:
        z = z[:, 0]
    if z.ndim == 1:
        p = 1.0 / (1.0 + np.exp(-z))
        pair = [1.0 - p, p] if card.positive_index == 1 else [p, 1.0 - p]
        return np.stack(pair, axis=1).astype(np.float32)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def predicted_labels(probs: np.ndarray, card: ModelCard) -> list[str]:
    """Two classes: the card's threshold on P(positive); N classes: the most probable class."""
    probs = np.asarray(probs)
    if card.num_classes == 2:
        pos = card.positive_index
        idx = np.where(probs[:, pos] >= card.threshold, pos, 1 - pos)
    else:
        idx = probs.argmax(axis=1)
    return [card.class_names[i] for i in idx]


def _as_batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    return images[None] if images.ndim == 3 else images


def _chunked(
    run: Callable[[np.ndarray], np.ndarray], images: np.ndarray, size: int, width: int
) -> np.ndarray:
    images = _as_batch(images)
    if len(images) == 0:
        return np.zeros((0, width), dtype=np.float32)
    return np.concatenate([run(images[i : i + size]) for i in range(0, len(images), size)])


# --- precision ------------------------------------------------------------------------------------------

FLOAT32_LAYERS = ("standardize", "logits")  # pixels in, logits out stay float32 (see models.factory)


def mixed_precision_model(model: Any, policy: str = "mixed_bfloat16") -> Any:
    """A copy of `model` whose layers compute under `policy` (float32 variables, bf16 / fp16 compute).

    A `.keras` file stores each layer's dtype policy, so a global policy does not reach a loaded model:
    every Layer is rebuilt from its config with the policy replaced, and the weights copied. Graph
    operations that are not layers (the `x + 3` of MobileNetV3's hard-swish, ConvNeXt's additions) have no
    policy and follow their inputs' dtype: they are reused as they are. Nested models are cloned too.
    """
    import keras

    def clone(layer: Any) -> Any:
        if not isinstance(layer, keras.layers.Layer):
            return layer  # a stateless keras.ops operation
        if isinstance(layer, keras.layers.InputLayer) or layer.name in FLOAT32_LAYERS:
            return layer  # shared with the float32 model: same weights, float32 compute
        config = layer.get_config()
        config["dtype"] = policy
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def _converted(model: Any, precision: str, name: str) -> Any:
    """`mixed_precision_model`, or one line naming the model and why it cannot run in `precision`."""
    try:
        return mixed_precision_model(model, POLICIES[precision])
    except Exception as exc:  # a layer Keras cannot rebuild under another policy
        raise ModelError(
            f"cannot run the model in {precision} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            path=name,
            hint="use --precision fp32",
        ) from None


# --- Keras ----------------------------------------------------------------------------------------------


class KerasPredictor:
    """The Keras model (logits) in one `tf.function` for any batch size; probabilities in NumPy.

    `compile`: XLA (`jit_compile=True`). Worth it on a GPU; on this CPU XLA was measured 6-20x slower for
    EfficientNet/MobileNet (depthwise convolutions) and +18% for DenseNet201 after a 2-minute compile.
    XLA compiles once per input shape, so partial batches are zero-padded to `batch_size`.
    """

    backend = "keras"

    def __init__(
        self,
        model: Any,
        card: ModelCard,
        *,
        model_id: str,
        precision: str = "auto",
        compile: bool = False,
        batch_size: int = BATCH_SIZE,
        source: str | Path | None = None,
    ) -> None:
        """`source`: the model file, named in errors."""
        import tensorflow as tf

        self.model = model  # float32, logits: what Grad-CAM and calibration use
        self.card = card
        self.model_id = model_id
        self.precision = inference_precision(precision)
        self.compiled = bool(compile)
        self.batch_size = batch_size
        if self.precision == "fp32":
            self._runner = model
        else:
            self._runner = _converted(model, self.precision, source or model_id)
        runner = self._runner

        def logits(images: Any) -> Any:
            return tf.cast(runner(tf.cast(images, tf.float32), training=False), tf.float32)

        self.input_size = tuple(int(d) for d in model.input_shape[1:3])
        spec = [tf.TensorSpec([None, *self.input_size, 3], tf.uint8, name="images")]
        self._logits = tf.function(logits, input_signature=spec, jit_compile=self.compiled)

    def raw_logits(self, images: np.ndarray) -> np.ndarray:
        """(N, 1) or (N, C) float32 logits, before any temperature."""
        width = 1 if self.card.num_classes == 2 else self.card.num_classes
        return _chunked(self._run, images, self.batch_size, width)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Logits before any temperature: (N,) for two classes (the positive class's), (N, C) otherwise."""
        z = self.raw_logits(images)
        return z[:, 0] if self.card.num_classes == 2 else z

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        return logits_to_probs(self.raw_logits(images), self.card)

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        if tuple(chunk.shape[1:3]) != self.input_size:
            raise ModelError(
                f"images are {chunk.shape[1]}x{chunk.shape[2]} px but the model takes "
                f"{self.input_size[0]}x{self.input_size[1]}",
                hint="preprocess them with the model's card (preprocess.image_size)",
            )
        n = len(chunk)
        if self.compiled and 1 < n < self.batch_size:  # two shapes only: 1 and batch_size
            pad = np.zeros((self.batch_size - n, *chunk.shape[1:]), dtype=np.uint8)
            chunk = np.concatenate([chunk, pad])
        return self._logits(np.ascontiguousarray(chunk, dtype=np.uint8)).numpy()[:n]


# --- exports --------------------------------------------------------------------------------------------


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
        return _chunked(self._run, images, 64, self.card.num_classes).astype(np.float32)

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
        return _chunked(self._run, images, BATCH_SIZE, self.card.num_classes).astype(np.float32)

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
        return _chunked(self._run, images, BATCH_SIZE, self.card.num_classes).astype(np.float32)

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self._fn(pixels=tf.constant(chunk, tf.float32))["probabilities"].numpy()


# --- loading --------------------------------------------------------------------------------------------


def runtime_available(backend: str) -> bool:
    return backend not in RUNTIMES or importlib.util.find_spec(RUNTIMES[backend]) is not None


def _require_runtime(backend: str) -> None:
    if not runtime_available(backend):
        raise ConfigError(f"the {backend} backend needs {RUNTIMES[backend]}, which is not installed",
                          hint=INSTALL_HINT)  # fmt: skip


def check_backend(backend: str) -> str:
    if backend == "torch":
        raise ConfigError(
            "the torch backend is gone: LeukoScope runs on Keras / TensorFlow now",
            hint="use --backend auto, keras, tflite or onnx",
        )
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}", hint=f"choose one of: {', '.join(BACKENDS)}")
    return backend


def model_kind(path: Path) -> str:
    """ensemble | saved_model | onnx | tflite | folder (a model folder, or its model.keras)."""
    from leukoscope.experiments.ensemble import is_ensemble_spec

    if is_ensemble_spec(path):
        return "ensemble"
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return "saved_model"
    suffix = path.suffix.lower()
    if path.is_file() and suffix in (".onnx", ".tflite"):
        return suffix[1:]
    folder = path if path.is_dir() else path.parent
    if (folder / CARD_NAME).is_file() and (path.is_dir() or suffix == ".keras"):
        return "folder"
    raise ModelError(
        "not a LeukoScope model",
        path=path,
        hint=f"pass a folder with {CARD_NAME} + {WEIGHTS_NAME}, an ensemble.json or an export "
        "(.onnx, .tflite, a SavedModel folder) made by `leukoscope export`",
    )


def load_predictor(
    path: str | Path,
    *,
    backend: str = "auto",
    precision: str = "auto",
    compile: bool = False,
    cache_export: bool = False,
) -> Predictor:
    """The predictor for a model folder, its model.keras, an ensemble spec or an export.

    `precision` (auto is fp32; bf16, fp16) and `compile` (XLA) apply to the Keras backend only.
    `cache_export`: with backend auto, a model folder without an up-to-date export gets one built and
    kept beside its model.keras (`cache_first_export`), so this and later calls run on it.
    """
    check_backend(backend)
    precision = canonical(precision)
    path = Path(path)
    if not path.exists():
        raise ModelError(
            "model not found", path=path, hint="pass a model folder, an ensemble.json or an export"
        )
    kind = model_kind(path)
    if kind == "ensemble":
        from leukoscope.experiments.ensemble import load_ensemble

        return load_ensemble(path, precision, compile=compile, backend=backend, cache_export=cache_export)
    if kind == "folder":
        return _load_folder(path, backend, precision, compile, cache_export)
    own = {"saved_model": "keras", "onnx": "onnx", "tflite": "tflite"}[kind]
    if backend not in ("auto", own):
        raise ConfigError(
            f"a {kind} export cannot run on the {backend} backend", path=path, hint=f"use --backend {own}"
        )
    _check_exported(own if kind != "saved_model" else "SavedModel", precision, compile)
    if kind == "onnx":
        _require_runtime("onnx")
        return OnnxPredictor(path)
    card = _export_card(path)
    if kind == "tflite":
        _require_runtime("tflite")
        return TFLitePredictor(path, card=card)
    return SavedModelPredictor(path, card)


def _check_exported(what: str, precision: str, compile: bool) -> None:
    if precision not in ("auto", "fp32"):
        raise ConfigError(
            f"the {what} backend runs in fp32, not {precision}", hint="use --precision auto or fp32"
        )
    if compile:
        raise ConfigError("--compile (XLA) applies to the keras backend only", hint="drop --compile")


def _export_card(path: Path) -> ModelCard:
    """The card beside (or, for a SavedModel, inside) an export, with the temperature baked into it."""
    from leukoscope.infer.export import read_record

    folder = path if path.is_dir() else path.parent  # a SavedModel folder holds its card inside
    if not (folder / CARD_NAME).is_file():
        raise ModelError(
            f"no {CARD_NAME} beside the exported model",
            path=path,
            hint=f"keep the {CARD_NAME} that `leukoscope export` wrote next to it",
        )
    card = ModelCard.load(folder)
    record = read_record(path.parent, path.name)
    if record is not None:
        card.temperature = float(record.get("temperature", card.temperature))
    card.model_id = card.model_id or folder.name
    return card


def _load_folder(path: Path, backend: str, precision: str, compile: bool, cache_export: bool) -> Predictor:
    from leukoscope.infer.export import EXPORT_FILES, fresh_export

    folder = path if path.is_dir() else path.parent
    card = ModelCard.load(folder)
    card.model_id = card.model_id or folder.name
    has_keras = (folder / WEIGHTS_NAME).is_file()
    if backend == "auto":
        wants_keras = path.suffix.lower() == ".keras" or precision not in ("auto", "fp32") or compile
        if not wants_keras:
            for name in AUTO_ORDER:
                found = fresh_export(folder, name, card) if runtime_available(name) else None
                if found is not None:
                    return _exported(found, name, card, precision, compile)
            cached = cache_first_export(folder, card) if cache_export and has_keras else None
            if cached is not None:
                return _exported(cached[0], cached[1], card, precision, compile)
        if not has_keras:
            present = [n for n in AUTO_ORDER if (folder / EXPORT_FILES[n]).is_file()]
            if present:
                _require_runtime(present[0])
                return _exported(folder / EXPORT_FILES[present[0]], present[0], card, precision, compile)
        backend = "keras"
    if backend == "keras":
        return _load_keras(folder, card, precision, compile)
    _check_exported(backend, precision, compile)
    _require_runtime(backend)
    found = fresh_export(folder, backend, card)
    if found is not None:
        return _exported(found, backend, card, precision, compile)
    if not has_keras:
        raise ModelError(f"no {WEIGHTS_NAME} and no {EXPORT_FILES[backend]} here", path=folder)
    from leukoscope.infer.export import convert_in_memory
    from leukoscope.models.card import load_keras

    log.warning(
        "no up-to-date %s beside %s: converting in memory (`leukoscope export %s --format %s` keeps one)",
        EXPORT_FILES[backend], WEIGHTS_NAME, folder, backend,
    )  # fmt: skip
    data = convert_in_memory(load_keras(folder / WEIGHTS_NAME), card, backend)
    return _exported(data, backend, card, precision, compile, name=str(folder))


def _exported(
    source: Path | bytes,
    backend: str,
    card: ModelCard,
    precision: str,
    compile: bool,
    name: str | None = None,
) -> Predictor:
    """An export run with the folder's card (the record's temperature is what was baked in)."""
    from leukoscope.infer.export import read_record

    _check_exported(backend, precision, compile)
    if isinstance(source, Path):
        record = read_record(source.parent, source.name)
        if record is not None and "temperature" in record:
            card.temperature = float(record["temperature"])
    if backend == "onnx":
        return OnnxPredictor(source, card=card, name=name)
    return TFLitePredictor(source, card=card, name=name)


def _load_keras(folder: Path, card: ModelCard, precision: str, compile: bool) -> KerasPredictor:
    from leukoscope.models.card import load_keras

    if not (folder / WEIGHTS_NAME).is_file():
        raise ModelError(
            f"{WEIGHTS_NAME} is missing", path=folder, hint="the keras backend needs the trained model"
        )
    model = load_keras(folder / WEIGHTS_NAME)
    return KerasPredictor(
        model,
        card,
        model_id=card.model_id,
        precision=precision,
        compile=compile,
        source=folder / WEIGHTS_NAME,
    )


def cache_first_export(folder: Path, card: ModelCard) -> tuple[Path, str] | None:
    """Build the fastest export whose runtime is installed beside model.keras, once (`export.build_cache`)."""
    from leukoscope.infer.export import build_cache

    for name in AUTO_ORDER:
        if runtime_available(name) and (name != "onnx" or importlib.util.find_spec("tf2onnx")):
            built = build_cache(folder, name, card)
            return None if built is None else (built, name)
    return None
