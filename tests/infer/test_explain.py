"""Grad-CAM: right layer per family, heatmap aligned with the original image, PNG of the original's size."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import pytest
import timm
import torch
from typer.testing import CliRunner

from leukoscope.cli.main import app
from leukoscope.config import PreprocessConfig
from leukoscope.infer.explain import (
    GradCamExplainer,
    cam_to_original,
    crop_box,
    find_target_layer,
    png_data_url,
)
from leukoscope.models.card import load_model

from .helpers import cell_image, write_image, write_mixed_folder


@pytest.mark.parametrize(
    ("name", "attr"),
    [
        ("test_efficientnet", "bn2"),
        ("test_resnet", "layer4"),
        ("test_convnext", "stages"),
        ("test_nfnet", "final_act"),
    ],
)
def test_target_layer_per_family(name: str, attr: str) -> None:
    backbone = timm.create_model(name, num_classes=0)
    layer = find_target_layer(backbone)
    expected = getattr(backbone, attr)
    assert layer is (expected[-1] if attr == "stages" else expected)


def test_target_layer_falls_back_to_last_spatial_output() -> None:
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), conv, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    assert find_target_layer(model) is conv  # the pool's 1x1 output is skipped


def test_cam_maps_back_through_crop_and_padding() -> None:
    rgb = np.zeros((100, 200, 3), np.uint8)
    rgb[20:60, 50:130] = 200  # the "cell": 80 wide x 40 high
    cfg = PreprocessConfig(crop="cell", image_size=64)
    cam = np.zeros((64, 64), np.float32)
    cam[16:48, :] = 1.0  # the padded square's middle band = exactly the cell
    full = cam_to_original(cam, rgb, cfg)
    assert full.shape == (100, 200)
    assert full[25:55, 55:125].min() > 0.9  # inside the cell
    assert full[:18].max() == 0 and full[62:].max() == 0 and full[:, :48].max() == 0


def test_explain_cli_writes_overlays_of_original_size(model_dir: Path, tmp_path: Path) -> None:
    files = write_mixed_folder(tmp_path / "in", good=2)
    odd = write_image(tmp_path / "in" / "sub" / "good0.png", cell_image(7, height=77, width=131))  # same stem
    out = tmp_path / "heatmaps"
    result = CliRunner().invoke(app, ["explain", str(model_dir), str(tmp_path / "in"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.iterdir())
    assert written == ["good0-2_gradcam.png", "good0_gradcam.png", "good1_gradcam.png"]
    for source in (files["good0"], files["good1"], odd):
        name = "good0-2_gradcam.png" if source == odd else f"{source.stem}_gradcam.png"
        overlay = cv2.imread(str(out / name))
        original = cv2.imread(str(source))
        assert overlay.shape == original.shape
        assert not np.array_equal(overlay, original)  # a heatmap was drawn


def test_explainer_data_url_and_target(model_dir: Path) -> None:
    model, card = load_model(model_dir)
    explainer = GradCamExplainer(model, card)
    rgb = cell_image(3, height=80, width=96)
    x, y, w, h = crop_box(rgb, card.preprocess)
    outside = np.ones(rgb.shape[:2], bool)
    outside[y : y + h, x : x + w] = False
    cams = {}
    for target in card.class_names:
        exp = explainer.explain(rgb, target)
        assert exp.target == target and exp.cam.shape == (80, 96) and exp.overlay.shape == (80, 96, 3)
        assert exp.cam.min() >= 0 and exp.cam.max() <= 1
        assert w < 96 and exp.cam[outside].max() == 0  # nothing outside the crop the model saw
        cams[target] = exp.cam
    # two classes share one logit z, scored as (z, -z): their Grad-CAM maps are ReLU(S) and ReLU(-S)
    assert max(c.max() for c in cams.values()) > 0
    assert not np.any((cams["all"] > 1e-3) & (cams["hem"] > 1e-3))
    url = explainer.explain(rgb).data_url()
    assert url.startswith("data:image/png;base64,")
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (80, 96, 3)
    assert png_data_url(b"\x89PNG") == "data:image/png;base64,iVBORw=="


def test_explain_refuses_onnx(tmp_path: Path) -> None:
    fake = tmp_path / "m.onnx"
    fake.write_bytes(b"")
    result = CliRunner().invoke(app, ["explain", str(fake), str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "Grad-CAM needs the PyTorch model" in str(result.exception)
