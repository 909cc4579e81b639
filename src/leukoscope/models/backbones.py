"""Backbones by case-insensitive name: every `keras.applications` model, plus a tiny CNN for smoke runs.

A backbone is a `BackboneSpec`: how to build it on an input tensor (so the classifier stays one flat
functional model and Grad-CAM can reach its last feature map), its ImageNet input size, and which input
convention its weights expect (`input_mode`):

- `raw`: 0-255 RGB, the model rescales and normalises inside (EfficientNet, EfficientNetV2, ConvNeXt,
  MobileNetV3);
- `torch`: (x / 255 - ImageNet mean) / ImageNet std (DenseNet);
- `tf`: x / 127.5 - 1 (MobileNet, MobileNetV2, Inception, Xception, NASNet, ResNetV2);
- `caffe`: BGR, ImageNet channel means subtracted, unscaled (ResNet, VGG).

A new backbone is one `BACKBONES.register` entry.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from leukoscope.errors import ModelError
from leukoscope.registry import Registry

InputMode = Literal["raw", "torch", "tf", "caffe"]
Builder = Callable[..., Any]  # (input_tensor=..., weights=...) -> keras.Model of the feature extractor


@dataclass(frozen=True)
class BackboneSpec:
    name: str  # lower case, what users type
    build: Builder  # keras.applications-style: include_top=False, input_tensor, weights
    default_size: int
    input_mode: InputMode
    min_size: int = 32
    label: str = ""  # how the paper / Keras spell it (DenseNet201)
    imagenet: bool = True  # Keras publishes ImageNet weights for it
    # Keras builds another architecture for ImageNet weights (EfficientNet: an extra Rescaling after its
    # Normalization): then it is always built that way, with or without weights (models.weight_files)
    imagenet_layout: bool = False

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name)


BACKBONES: Registry[BackboneSpec] = Registry("backbone")

# keras.applications module -> the input convention of its ImageNet weights (its `preprocess_input`).
_MODULE_MODES: dict[str, InputMode] = {
    "convnext": "raw",
    "efficientnet": "raw",
    "efficientnet_v2": "raw",
    "mobilenet_v3": "raw",
    "densenet": "torch",
    "inception_resnet_v2": "tf",
    "inception_v3": "tf",
    "mobilenet": "tf",
    "mobilenet_v2": "tf",
    "nasnet": "tf",
    "resnet_v2": "tf",
    "xception": "tf",
    "resnet": "caffe",
    "vgg16": "caffe",
    "vgg19": "caffe",
}
_SIZES = {
    **{f"efficientnetb{i}": s for i, s in enumerate((224, 240, 260, 300, 380, 456, 528, 600))},
    **{f"efficientnetv2b{i}": s for i, s in enumerate((224, 240, 260, 300))},
    "efficientnetv2s": 384,
    "efficientnetv2m": 480,
    "efficientnetv2l": 480,
    "inceptionv3": 299,
    "inceptionresnetv2": 299,
    "xception": 299,
    "nasnetlarge": 331,
}
# keras.applications modules whose architecture depends on `weights == "imagenet"` (Keras 3.15: only
# EfficientNet v1; the others only validate their arguments differently)
_IMAGENET_LAYOUT = {"efficientnet"}
_MIN_SIZES = {"inceptionv3": 75, "inceptionresnetv2": 75, "xception": 71}


def _register_keras_applications() -> None:
    import keras

    for attr in sorted(dir(keras.applications)):
        ctor = getattr(keras.applications, attr)
        if not (attr[0].isupper() and callable(ctor)):
            continue
        module = getattr(ctor, "__module__", "").rpartition(".")[2]
        if module not in _MODULE_MODES:
            continue
        name = attr.lower()
        BACKBONES.register(name)(
            BackboneSpec(
                name=name,
                build=_keras_builder(ctor),
                default_size=_SIZES.get(name, 224),
                input_mode=_MODULE_MODES[module],
                min_size=_MIN_SIZES.get(name, 32),
                label=attr,
                imagenet_layout=module in _IMAGENET_LAYOUT,
            )
        )


def _keras_builder(ctor: Callable[..., Any]) -> Builder:
    takes_preprocessing = "include_preprocessing" in inspect.signature(ctor).parameters

    def build(input_tensor: Any, weights: str | None) -> Any:
        kwargs: dict[str, Any] = {"include_top": False, "weights": weights, "input_tensor": input_tensor}
        if takes_preprocessing:
            kwargs["include_preprocessing"] = True  # 0-255 input, like EfficientNet (v1) always does
        return ctor(**kwargs)

    return build


def _simplecnn(input_tensor: Any, weights: str | None) -> Any:
    """Four conv blocks (16-128 filters): trains in seconds on a CPU. For tests and smoke runs only."""
    import keras
    from keras import layers

    if weights not in (None, "none"):
        raise ModelError("simplecnn has no ImageNet weights", hint="use --weights none or a weights file")
    x = input_tensor
    for i, filters in enumerate((16, 32, 64, 128)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{i + 1}_conv")(x)
        x = layers.BatchNormalization(name=f"block{i + 1}_bn")(x)
        activation = "top_activation" if i == 3 else f"block{i + 1}_relu"
        x = layers.Activation("relu", name=activation)(x)
        if i < 3:
            x = layers.MaxPooling2D(name=f"block{i + 1}_pool")(x)
    return keras.Model(keras.utils.get_source_inputs(input_tensor), x, name="simplecnn")


def _register_builtin() -> None:
    BACKBONES.register("simplecnn")(
        BackboneSpec("simplecnn", _simplecnn, 64, "tf", min_size=16, label="SimpleCNN", imagenet=False)
    )


def get_backbone(name: str) -> BackboneSpec:
    """The spec for `name` (any case); an unknown name is one line with the closest known names."""
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key in BACKBONES:
        return BACKBONES.get(key)
    close = difflib.get_close_matches(key, BACKBONES.names(), n=4, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ModelError(
        f"unknown backbone {name!r}",
        hint=hint + "any keras.applications model by name works (densenet201, efficientnetb2, ...); "
        "list them with `leukoscope backbones`",
    )


def feature_layer_name(base: Any) -> str:
    """The last layer whose output is a 4-D feature map: where Grad-CAM looks (DenseNet 'relu', ...)."""
    for layer in reversed(base.layers):
        shape = getattr(layer, "output", None)
        if shape is not None and len(getattr(shape, "shape", ())) == 4:
            return str(layer.name)
    raise ModelError(f"backbone {base.name!r} has no 4-D feature map")


_register_keras_applications()
_register_builtin()
