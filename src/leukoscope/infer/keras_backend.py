"""The Keras backend: the model as trained, in one `tf.function`, in fp32 or a mixed bf16 / fp16 policy.

Precision (`leukoscope.precision`): `auto` is fp32 on every machine, so a model gives the same
probabilities everywhere; bf16 / fp16 run the model through `mixed_precision_model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from leukoscope.errors import ModelError
from leukoscope.infer.batches import BATCH_SIZE, predict_batched
from leukoscope.models.card import ModelCard
from leukoscope.precision import POLICIES, inference_precision


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
        if isinstance(layer, keras.layers.Rescaling | keras.layers.Normalization):
            return layer  # a backbone's own input scaling: x / 255 - mean cancels digits in bf16
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
        return predict_batched(self._run, images, self.batch_size, width=width)

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
