"""A backbone + the paper's head as one flat Keras functional model, returning logits.

pixels (0-255 RGB, float) -> PixelStandardization -> backbone (include_top=False) -> GlobalAveragePooling
-> Dense(256, ReLU) [-> Dropout] -> Dense(1) logit for two classes (sigmoid = P(positive class), the
paper's "Dense 1 sigmoid"), Dense(N) logits for N classes (softmax). The sigmoid/softmax is applied by
the losses and the predictor, so calibration can rescale logits; `probability_model` appends it for export.

The backbone is built on the classifier's own input tensor (not nested), so every backbone layer is a
layer of the classifier: Grad-CAM can take the last feature map as an output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leukoscope.errors import ConfigError, ModelError
from leukoscope.models.backbones import BackboneSpec, feature_layer_name, get_backbone

INPUT_NAME = "pixels"
LOGITS_NAME = "logits"


@dataclass(frozen=True)
class ClassifierSpec:
    """What decides the architecture (everything the model card needs to describe it)."""

    backbone: str
    num_classes: int
    image_size: int
    normalize: str = "dataset"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    head_hidden: int = 256
    dropout: float = 0.0


def paper_head(features: Any, outputs: int, hidden: int, dropout: float) -> Any:
    """GlobalAveragePooling -> Dense(hidden, ReLU) [-> Dropout] -> Dense(outputs) logits (float32 under a
    mixed policy, so the losses and the sigmoid see full precision)."""
    from keras import layers

    x = layers.GlobalAveragePooling2D(name="head_pool")(features)
    x = layers.Dense(hidden, activation="relu", name="head_dense")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(outputs, name=LOGITS_NAME, dtype="float32")(x)


def check_spec(spec: ClassifierSpec, backbone: BackboneSpec) -> None:
    if spec.num_classes < 2:
        raise ConfigError(f"a classifier needs at least 2 classes, got {spec.num_classes}")
    if spec.head_hidden < 1 or not 0.0 <= spec.dropout < 1.0:
        raise ConfigError(
            f"bad head settings (head_hidden={spec.head_hidden}, dropout={spec.dropout})",
            hint="head_hidden >= 1 and dropout in [0, 1)",
        )
    if spec.image_size < backbone.min_size:
        raise ConfigError(
            f"{backbone.label} needs images of at least {backbone.min_size} px, got {spec.image_size}",
            hint="raise preprocess.image_size (--image-size)",
        )


def build_classifier(spec: ClassifierSpec, weights: str = "none") -> tuple[Any, str]:
    """(model, feature layer name); `weights`: imagenet | none | a Keras notop .h5 | a .keras / .weights.h5
    file or model folder (leukoscope.models.weight_files)."""
    import keras

    from leukoscope.models.layers import PixelStandardization, input_affine
    from leukoscope.models.weight_files import (
        keras_backbone_weights,
        load_weights_file,
        one_line,
        weights_kind,
    )

    backbone = get_backbone(spec.backbone)
    check_spec(spec, backbone)
    kind = weights_kind(weights)
    if kind in ("imagenet", "backbone.h5") and not backbone.imagenet:
        raise ConfigError(
            f"{backbone.label} has no ImageNet weights (nor a Keras weights file)",
            hint="use --weights none, a .weights.h5 file or a .keras model",
        )
    try:
        scale, offset, bgr = input_affine(backbone.input_mode, spec.normalize, spec.mean, spec.std)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="compute the training statistics first") from None
    pixels = keras.Input((spec.image_size, spec.image_size, 3), name=INPUT_NAME, dtype="float32")
    x = PixelStandardization(scale, offset, bgr, name="standardize")(pixels)
    with keras_backbone_weights(backbone.label, weights, backbone.imagenet_layout) as keras_weights:
        try:
            base = backbone.build(input_tensor=x, weights=keras_weights)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"cannot build backbone {backbone.label} ({one_line(exc)})") from None
    if kind == "none" and backbone.input_mode == "raw":
        imagenet_input_statistics(base)
    outputs = 1 if spec.num_classes == 2 else spec.num_classes
    logits = paper_head(base.output, outputs, spec.head_hidden, spec.dropout)
    model = keras.Model(pixels, logits, name=f"leukoscope_{backbone.name}")
    if kind in ("weights.h5", "keras"):
        load_weights_file(model, weights, backbone.label)
    return model, feature_layer_name(base)


def imagenet_input_statistics(base: Any) -> None:
    """Give a `raw` backbone built without weights the input statistics its ImageNet weights would set.

    EfficientNet (v1) normalises inside with a Normalization layer whose mean / variance come with its
    weights: built from random weights they are 0 / 1, so the network would see (z * 0.23 + 0.45) / 0.47
    instead of the standardised z that `input_affine` hands every backbone (a constant offset and half the
    range: EfficientNetB2 from scratch stayed near chance where DenseNet201 learned). Keras' ImageNet
    file stores the standard deviation as the variance and rescales by 1 / sqrt(std) after it; without
    that Rescaling the variance is std squared.
    """
    import keras
    import numpy as np

    from leukoscope.models.layers import IMAGENET_MEAN, IMAGENET_STD

    layers = base.layers
    for i, layer in enumerate(layers):
        if not isinstance(layer, keras.layers.Normalization) or not hasattr(layer, "adapt_mean"):
            continue
        quirk = i + 1 < len(layers) and isinstance(layers[i + 1], keras.layers.Rescaling)
        std = np.asarray(IMAGENET_STD, np.float32)
        layer.adapt_mean.assign(np.asarray(IMAGENET_MEAN, np.float32))
        layer.adapt_variance.assign(std if quirk else std**2)
        layer.finalize_state()


def probability_model(model: Any, temperature: float = 1.0, positive_index: int = 1) -> Any:
    """`model` followed by sigmoid/softmax (with the temperature): class probabilities in name order."""
    import keras

    from leukoscope.models.layers import ClassProbabilities

    probs = ClassProbabilities(temperature, positive_index, name="probabilities")(model.output)
    return keras.Model(model.input, probs, name=f"{model.name}_probabilities")
