"""Grad-CAM: the backbone's last feature map per family, heatmaps aligned with the original image,
PNG overlays of the original's size, and the CLI refusing what has no gradients."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import pytest
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
    ("backbone", "layer"),
    [("simplecnn", "top_activation"), ("densenet121", "relu"), ("efficientnetb0", "top_activation")],
)
def test_target_layer_per_family(backbone: str, layer: str) -> None:
    """Found by search (no card), it is the layer the factory names and the paper's Grad-CAM layer."""
    from leukoscope.models.factory import ClassifierSpec, build_classifier

    spec = ClassifierSpec(backbone, 2, 64, mean=(0.5,) * 3, std=(0.25,) * 3)  # 64 px: a 2x2 last map
    model, feature_layer = build_classifier(spec, weights="none")
    assert find_target_layer(model) == feature_layer == layer
    assert find_target_layer(model, "pixels") == "pixels"  # the card's choice wins when the model has it


def test_target_layer_skips_maps_without_space() -> None:
    import keras

    x = inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, name="conv_a")(x)
    x = keras.layers.Conv2D(8, 3, name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pooled")(x)  # (1, 1, 8): 4-D, no space
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, name="logits")(x))
    assert find_target_layer(model) == "conv_b"
    assert find_target_layer(model, "missing_layer") == "conv_b"


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
    from leukoscope.infer.keras_backend import KerasPredictor
    from leukoscope.infer.predictor import predicted_labels, preprocess_rgb

    model, card = load_model(model_dir)
    explainer = GradCamExplainer(model, card)
    assert explainer.layer == card.feature_layer == "top_activation"
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
    keras_pred = KerasPredictor(model, card, model_id="x", precision="fp32")
    for i in range(6):  # the default target is the class `predict` gives, threshold included
        image = cell_image(i)
        probs = keras_pred.predict_arrays(preprocess_rgb(image, card))
        assert explainer.explain(image).target == predicted_labels(probs, card)[0]
    url = explainer.explain(rgb).data_url()
    assert url.startswith("data:image/png;base64,")
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (80, 96, 3)
    assert png_data_url(b"\x89PNG") == "data:image/png;base64,iVBORw=="


def test_graph_cam_matches_an_eager_computation(model_dir: Path) -> None:
    """The tf.function's map equals Grad-CAM done by hand, eagerly: ReLU(sum_k mean(dz/dA_k) A_k)."""
    import keras
    import tensorflow as tf

    from leukoscope.infer.predictor import preprocess_rgb

    model, card = load_model(model_dir)
    explainer = GradCamExplainer(model, card)
    split = keras.Model(model.input, [model.get_layer(card.feature_layer).output, model.output])
    image = preprocess_rgb(cell_image(2), card)
    for target, sign in (("all", 1.0), ("hem", -1.0)):  # "all" is the positive class: score z, else -z
        with tf.GradientTape() as tape:
            features, logits = split(image[None].astype(np.float32))
            score = sign * logits[0, 0]
        grads = tape.gradient(score, features)[0].numpy()
        manual = np.maximum((features[0].numpy() * grads.mean(axis=(0, 1))).sum(axis=-1), 0)
        heat, chosen, _ = explainer._cam(
            image, np.int32(card.class_names.index(target)), np.float32(1), np.float32(0.5)
        )
        assert card.class_names[int(chosen)] == target
        expected = manual / max(manual.max(), 1e-12)
        np.testing.assert_allclose(heat.numpy(), expected, atol=1e-4)


def test_explain_crops_on_stored_crops(model_dir: Path) -> None:
    """On preprocessed crops: the crop-sized map of `explain`, the class and probabilities `predict` gives."""
    from leukoscope.errors import ModelError
    from leukoscope.infer.keras_backend import KerasPredictor
    from leukoscope.infer.predictor import predicted_labels, preprocess_rgb

    model, card = load_model(model_dir)
    explainer = GradCamExplainer(model, card)
    rgbs = [cell_image(i) for i in range(5)]
    crops = np.stack([preprocess_rgb(rgb, card) for rgb in rgbs])
    done = explainer.explain_crops(crops)
    size = card.preprocess.image_size
    assert done.cams.shape == (5, size, size) and done.cams.min() >= 0 and done.cams.max() <= 1
    probs = KerasPredictor(model, card, model_id="x", precision="fp32").predict_arrays(crops)
    np.testing.assert_allclose(done.probs, probs, atol=1e-5)
    assert [card.class_names[i] for i in done.explained] == predicted_labels(probs, card)
    for rgb, cam in zip(rgbs, done.cams, strict=True):  # mapped back, it is the original's heatmap
        np.testing.assert_allclose(
            cam_to_original(cam, rgb, card.preprocess), explainer.explain(rgb).cam, atol=1e-5
        )
    assert explainer.explain_crops(crops[:0]).cams.shape == (0, size, size)
    with pytest.raises(ModelError, match="the model takes"):
        explainer.explain_crops(crops[:, :-1])


def test_explain_refuses_exports_and_ensembles(tmp_path: Path) -> None:
    fake = tmp_path / "m.onnx"
    fake.write_bytes(b"")
    result = CliRunner().invoke(app, ["explain", str(fake), str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "Grad-CAM needs the Keras model" in str(result.exception)
