"""The two layers LeukoScope adds around a backbone, registered so `.keras` files load with safe_mode=True.

- `PixelStandardization`: 0-255 RGB pixels -> what the backbone expects, one per-channel affine map
  (+ an RGB->BGR flip for caffe-style weights). Training-set standardisation and the backbone's own
  preprocessing are both affine, so either is a (scale, offset) pair computed by `input_affine`; baking it
  into the model means every export (SavedModel, TFLite, ONNX) takes plain pixels.
- `ClassProbabilities`: logits -> probabilities in class-name order, with the calibration temperature:
  what exported models return.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)


@keras.saving.register_keras_serializable(package="leukoscope")
class PixelStandardization(keras.layers.Layer):
    """y = x * scale + offset per RGB channel, then optionally reversed to BGR."""

    def __init__(
        self, scale: Sequence[float], offset: Sequence[float], bgr: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.scale = [float(v) for v in scale]
        self.offset = [float(v) for v in offset]
        self.bgr = bool(bgr)

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        scale = ops.convert_to_tensor(self.scale, dtype=self.compute_dtype)
        offset = ops.convert_to_tensor(self.offset, dtype=self.compute_dtype)
        x = x * scale + offset
        return ops.flip(x, axis=-1) if self.bgr else x

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "offset": self.offset, "bgr": self.bgr}


@keras.saving.register_keras_serializable(package="leukoscope")
class ClassProbabilities(keras.layers.Layer):
    """(B, 1) two-class logits or (B, N) logits -> (B, N) probabilities in class_names order."""

    def __init__(self, temperature: float = 1.0, positive_index: int = 1, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.temperature = float(temperature)
        self.positive_index = int(positive_index)

    def call(self, logits: Any) -> Any:
        z = ops.cast(logits, "float32") / self.temperature
        if z.shape[-1] != 1:
            return ops.softmax(z, axis=-1)
        p = ops.sigmoid(z)
        pair = [1.0 - p, p] if self.positive_index == 1 else [p, 1.0 - p]
        return ops.concatenate(pair, axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        classes = 2 if input_shape[-1] == 1 else input_shape[-1]
        return (*input_shape[:-1], classes)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "positive_index": self.positive_index,
        }


def input_affine(
    input_mode: str,
    normalize: str,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> tuple[list[float], list[float], bool]:
    """(scale, offset, bgr) mapping 0-255 RGB pixels to the backbone's input.

    normalize="backbone": the backbone's own preprocessing (its `preprocess_input`). normalize="dataset"
    (the paper): standardise with the training set's mean/std (in [0, 1] units), z = (x/255 - mean)/std,
    and hand z to the backbone as a standardised ImageNet image would arrive: DenseNet ("torch") gets z
    itself; a backbone that normalises inside ("raw") gets (z * std_in + mean_in) * 255, which its own
    layers turn back into z; "tf" and "caffe" backbones get the same re-coloured image through their
    preprocessing. Only affine maps are involved, so the result is one scale and offset per channel.
    """
    bb_scale, bb_offset = _backbone_affine(input_mode)
    if normalize == "backbone":
        return bb_scale.tolist(), bb_offset.tolist(), input_mode == "caffe"
    if mean is None or std is None:
        raise ValueError("dataset normalisation needs the training set's mean and std")
    m, s = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    m_in, s_in = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    # pixels of an image re-coloured to ImageNet's statistics: x' = a x + b
    a = s_in / s
    b = 255.0 * (m_in - m * s_in / s)
    scale = bb_scale * a
    offset = bb_scale * b + bb_offset
    return scale.tolist(), offset.tolist(), input_mode == "caffe"


def _backbone_affine(input_mode: str) -> tuple[np.ndarray, np.ndarray]:
    m_in, s_in = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    if input_mode == "raw":
        return np.ones(3), np.zeros(3)
    if input_mode == "torch":
        return 1.0 / (255.0 * s_in), -m_in / s_in
    if input_mode == "tf":
        return np.full(3, 1 / 127.5), np.full(3, -1.0)
    if input_mode == "caffe":
        return np.ones(3), -np.asarray(CAFFE_MEAN_RGB)
    raise ValueError(f"unknown input mode {input_mode!r}")
