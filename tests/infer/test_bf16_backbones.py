"""bf16 inference works for every keras.applications family: the smallest member of each, at its minimum
input size, random weights, loaded through `load_predictor` (what `predict` and `serve` use).

Random-weight networks amplify bf16 rounding: on the test cells their logits are a large common part
plus a small image-dependent one, which the helper stretches to the requested spread (at a logit std of
2, VGG16 moved by up to 0.07 in P; the gap grows with the spread). The heads here are spread to a logit
std of 0.15 (P from about 0.44 to 0.56, both sides of the threshold), where the largest gap measured
was 6.8e-3 (VGG16, EfficientNetV2B0), under the 1e-2 the comparison allows. MobileNet v1/v2/v3 at
32 px give the same output for every image (the signal vanishes through their depthwise blocks at
random weights): for them the numeric check sees only the constant part, and the structural check
(every layer's weights copied, every layer but the float32 input and output computing in bfloat16)
carries the test.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from leukoscope.infer.keras_backend import FLOAT32_LAYERS, KerasPredictor
from leukoscope.infer.predictor import load_predictor, preprocess_rgb
from leukoscope.models.backbones import _MODULE_MODES, BACKBONES

from .helpers import cell_image, make_model_dir

# keras.applications module -> the smallest model of that family the registry offers
SMALLEST = {
    "convnext": "convnexttiny",
    "densenet": "densenet121",
    "efficientnet": "efficientnetb0",
    "efficientnet_v2": "efficientnetv2b0",
    "inception_resnet_v2": "inceptionresnetv2",
    "inception_v3": "inceptionv3",
    "mobilenet": "mobilenet",
    "mobilenet_v2": "mobilenetv2",
    "mobilenet_v3": "mobilenetv3small",
    "nasnet": "nasnetmobile",
    "resnet": "resnet50",
    "resnet_v2": "resnet50v2",
    "vgg16": "vgg16",
    "vgg19": "vgg19",
    "xception": "xception",
}
TOLERANCE = 1e-2


def _family(name: str) -> str:
    import keras

    return getattr(keras.applications, BACKBONES.get(name).label).__module__.rpartition(".")[2]


def test_every_registered_family_is_covered() -> None:
    """A family added to the registry must get its smallest member into SMALLEST (and so into the test)."""
    families = {_family(n) for n in BACKBONES.names() if n != "simplecnn"}
    assert families == set(_MODULE_MODES) == set(SMALLEST)
    assert all(_family(name) == family for family, name in SMALLEST.items())


@pytest.mark.parametrize("backbone", sorted(SMALLEST.values()))
def test_bf16_inference_matches_fp32(backbone: str, tmp_path: Path) -> None:
    """The loader's bf16 predictor against the float32 model it loaded from the same file (what
    `load_predictor(precision="fp32")` runs: one load instead of two keeps the test shorter)."""
    start = time.perf_counter()
    size = BACKBONES.get(backbone).min_size
    folder = make_model_dir(tmp_path, backbone=backbone, size=size, logit_std=0.15)
    bf16 = load_predictor(folder, backend="keras", precision="bf16")
    assert isinstance(bf16, KerasPredictor) and bf16.precision == "bf16"
    fp32 = KerasPredictor(bf16.model, bf16.card, model_id=bf16.model_id, precision="fp32")
    _check_layers(bf16._runner, bf16.model)

    batch = np.stack([preprocess_rgb(cell_image(i), bf16.card) for i in range(16)])
    p32, p16 = fp32.predict_arrays(batch), bf16.predict_arrays(batch)
    assert np.isfinite(p16).all() and p16.dtype == np.float32
    gap = float(np.abs(p32 - p16).max())
    assert gap <= TOLERANCE, f"{backbone}: bf16 differs from fp32 by {gap:.4f}"
    print(f"{backbone} @{size}: max |dP| {gap:.2e}, {time.perf_counter() - start:.1f} s")


def _check_layers(copy: Any, original: Any) -> None:
    """Same layers, same weights; every layer computes in bfloat16 but the float32 input and output and
    the backbone's own pixel scaling (Rescaling, Normalization: x / 255 - mean loses its digits in bf16);
    nested models, like ConvNeXt's stem, are checked layer by layer; variables stay float32."""
    import keras

    assert [type(layer) for layer in copy.layers] == [type(layer) for layer in original.layers]
    for new, old in zip(copy.layers, original.layers, strict=True):
        if isinstance(new, keras.layers.InputLayer):
            continue
        if isinstance(new, keras.Model):
            _check_layers(new, old)
            continue
        pixels = isinstance(new, keras.layers.Rescaling | keras.layers.Normalization)
        wanted = "float32" if new.name in FLOAT32_LAYERS or pixels else "bfloat16"
        assert new.compute_dtype == wanted, (new.name, new.compute_dtype)
        floats = [w for w in new.weights if "float" in str(w.dtype)]  # not Normalization's int count
        assert all(str(w.dtype) == "float32" for w in floats), new.name
        for a, b in zip(new.get_weights(), old.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
