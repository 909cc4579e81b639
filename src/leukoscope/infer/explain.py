"""Grad-CAM heatmaps: which part of the cell drove the prediction.

The heatmap is computed on the preprocessed crop the model saw, then mapped back through the crop and
padding so the overlay lines up with the original image, at the original's size.
"""

from __future__ import annotations

import base64
import copy
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from leukoscope.config import PreprocessConfig
from leukoscope.errors import LeukoScopeError, ModelError
from leukoscope.models.card import ModelCard

# Top-level backbone attributes that hold the last convolutional feature map, per timm family:
# efficientnet / mobilenetv2 (bn2 = conv_head norm + activation), nfnet / byobnet, resnet, densenet, convnext.
TARGET_LAYER_NAMES = ("bn2", "conv_head", "final_act", "final_conv", "layer4", "features", "stages", "blocks")

Box = tuple[int, int, int, int]  # x, y, width, height


def find_target_layer(model: Any, image_size: int = 64) -> Any:
    """The layer Grad-CAM reads: a known last conv stage, else the last module with a spatial 4-D output.

    Candidates are checked with a forward pass because some families pool before their `conv_head`
    (mobilenetv3), which leaves a 1x1 map that would give a flat, useless heatmap.
    """
    import torch

    backbone = getattr(model, "backbone", model)
    shapes: dict[int, tuple[int, ...]] = {}
    order: list[Any] = []

    def hook(module: Any, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            shapes[id(module)] = tuple(output.shape)
            order.append(module)

    handles = [m.register_forward_hook(hook) for m in backbone.modules() if m is not backbone]
    try:
        with torch.no_grad():
            backbone(torch.zeros(1, 3, image_size, image_size))
    finally:
        for h in handles:
            h.remove()

    def spatial(module: Any) -> bool:
        shape = shapes.get(id(module), ())
        return len(shape) == 4 and shape[2] * shape[3] > 1

    for name in TARGET_LAYER_NAMES:
        layer = getattr(backbone, name, None)
        if isinstance(layer, torch.nn.Sequential | torch.nn.ModuleList) and name in ("stages", "blocks"):
            layer = layer[-1] if len(layer) else None
        if layer is not None and spatial(layer):
            return layer
    for module in reversed(order):
        if spatial(module):
            return module
    raise ModelError(
        f"no convolutional layer with a spatial output in {type(backbone).__name__} for Grad-CAM"
    )


def crop_box(rgb: np.ndarray, cfg: PreprocessConfig) -> Box:
    """The region of the original that `preprocess_image` keeps (mirrors its crop step)."""
    from leukoscope.preprocess.crop import cell_box

    h, w = rgb.shape[:2]
    if cfg.crop == "cell":
        return cell_box(rgb, cfg.black_threshold) or (0, 0, w, h)
    if cfg.crop == "center":
        side = max(1, round(min(h, w) * cfg.center_fraction))
        return (w - side) // 2, (h - side) // 2, side, side
    return 0, 0, w, h


def cam_to_original(cam: np.ndarray, rgb: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Undo resize + pad-to-square + crop: a (S, S) map -> (H, W), zero outside the crop."""
    x, y, w, h = crop_box(rgb, cfg)
    side = max(w, h)
    square = cv2.resize(cam.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    top, left = (side - h) // 2, (side - w) // 2
    full = np.zeros(rgb.shape[:2], dtype=np.float32)
    full[y : y + h, x : x + w] = square[top : top + h, left : left + w]
    return np.clip(full, 0.0, 1.0)


def overlay_heatmap(rgb: np.ndarray, cam: np.ndarray, image_weight: float = 0.55) -> np.ndarray:
    """JET heatmap blended over the image -> uint8 RGB of the image's size."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(rgb.astype(np.float32) / 255.0, cam, use_rgb=True, image_weight=image_weight)


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ModelError("could not encode the heatmap as PNG")
    return buf.tobytes()


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclass
class Explanation:
    target: str  # the class the heatmap explains
    cam: np.ndarray  # (H, W) float32 in [0, 1], aligned with the original image
    overlay: np.ndarray  # (H, W, 3) uint8 RGB

    def png(self) -> bytes:
        return png_bytes(self.overlay)

    def data_url(self) -> str:
        return png_data_url(self.png())


class GradCamExplainer:
    """Grad-CAM on a private fp32 copy of the model, so hooks and gradients never touch a serving engine.

    Calls are serialised with a lock: the CAM object keeps per-call activations on itself.
    """

    def __init__(self, model: Any, card: ModelCard) -> None:
        import torch
        from pytorch_grad_cam import GradCAM

        pre = card.preprocess
        if pre.mean is None or pre.std is None:
            raise ModelError("model card has no normalisation mean/std", hint="re-save the model from a run")
        self.card = card
        fp32 = copy.deepcopy(model).float().to("cpu", memory_format=torch.contiguous_format).eval()
        self.model = class_logits_module(fp32, card)
        self.layer = find_target_layer(fp32, min(pre.image_size, 128))
        self.cam = GradCAM(model=self.model, target_layers=[self.layer])
        self._mean = torch.tensor(pre.mean).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(pre.std).view(1, 3, 1, 1) * 255.0
        self._lock = threading.Lock()

    def _input(self, image: np.ndarray) -> Any:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        return (x - self._mean) / self._std

    def explain(self, rgb: np.ndarray, target: str | None = None) -> Explanation:
        """Heatmap for `target` (default: the predicted class) over the original `rgb` image."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        from leukoscope.preprocess.pipeline import preprocess_image

        x = self._input(preprocess_image(rgb, self.card.preprocess))
        with self._lock:
            target = target or self._predicted(x)
            index = self.card.class_names.index(target)
            cam = self.cam(input_tensor=x, targets=[ClassifierOutputTarget(index)])[0]
        full = cam_to_original(np.nan_to_num(cam), rgb, self.card.preprocess)
        return Explanation(target, full, overlay_heatmap(rgb, full))

    def _predicted(self, x: Any) -> str:
        import torch

        from leukoscope.infer.engine import logits_to_probs, predicted_labels

        with torch.no_grad():
            logits = self.model.model(x)
        return predicted_labels(logits_to_probs(logits, self.card).numpy(), self.card)[0]


def class_logits_module(model: Any, card: ModelCard) -> Any:
    import torch

    class ClassLogits(torch.nn.Module):
        """Two-class heads return (B,); Grad-CAM indexes classes, so it gets (-z, z) in class order."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.positive = card.positive_index if card.num_classes == 2 else -1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = self.model(x)
            if self.positive < 0:
                return z
            z = z.reshape(-1)
            return torch.stack([-z, z] if self.positive == 1 else [z, -z], dim=1)

    return ClassLogits()


def output_name(path: Path, taken: set[str]) -> str:
    """`<stem>_gradcam.png`, numbered when two inputs share a stem."""
    name, n = f"{path.stem}_gradcam.png", 2
    while name in taken:
        name, n = f"{path.stem}-{n}_gradcam.png", n + 1
    taken.add(name)
    return name


def explain_paths(
    explainer: GradCamExplainer, inputs: Iterable[str | Path], out_dir: str | Path
) -> list[dict[str, str]]:
    """Write one overlay PNG per readable input; unreadable ones are reported, not fatal."""
    from leukoscope._io import atomic_open
    from leukoscope.data.images import read_image
    from leukoscope.infer.predict import find_images

    out_dir = Path(out_dir)
    taken: set[str] = set()
    report = []
    for path, error in find_images(inputs):
        row = {"path": str(path), "heatmap": "", "target": "", "error": error}
        if not error:
            try:
                explanation = explainer.explain(read_image(path))
                out = out_dir / output_name(path, taken)
                with atomic_open(out, "wb") as fh:
                    fh.write(explanation.png())
                row.update(heatmap=str(out), target=explanation.target)
            except LeukoScopeError as exc:
                row["error"] = exc.what
            except Exception as exc:  # one hostile file must not stop the others
                row["error"] = f"cannot explain image ({type(exc).__name__}: {exc})"
        report.append(row)
    return report
