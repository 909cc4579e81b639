"""Small models and images for inference tests: bundled EfficientNet-Lite0 at 64 px, cells on black."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from leukoscope.config import PreprocessConfig
from leukoscope.models.card import ModelCard, save_model
from leukoscope.models.factory import create_classifier


def make_model_dir(
    root: Path,
    *,
    backbone: str = "tf_efficientnet_lite0",
    weights: str = "bundled",
    size: int = 64,
    classes: tuple[str, ...] = ("all", "hem"),
    seed: int = 0,
) -> Path:
    """Save a classifier + card whose probabilities spread around 0.5 on `cell_image`s (both classes)."""
    import torch

    torch.manual_seed(seed)
    model = create_classifier(backbone, len(classes), weights=weights).eval()
    if len(classes) == 2:
        _spread_logits(model, size)
    card = ModelCard(
        backbone=backbone,
        class_names=list(classes),
        positive_class=classes[0] if len(classes) == 2 else None,
        preprocess=PreprocessConfig(crop="cell", image_size=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        weights_source=weights,
        model_id=f"test-{backbone}",
    )
    return save_model(root, model, card)


def cell_image(seed: int, height: int = 90, width: int = 120) -> np.ndarray:
    """RGB uint8: one off-centre stained 'cell' with a nucleus on black (non-square on purpose)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    cx, cy = int(width * 0.4 + rng.integers(-5, 6)), int(height * 0.55 + rng.integers(-5, 6))
    r = int(min(height, width) * (0.22 + 0.12 * rng.random()))
    cv2.circle(img, (cx, cy), r, tuple(int(v) for v in rng.integers(120, 240, 3)), -1)
    cv2.circle(img, (cx + r // 4, cy), max(2, r // 2), tuple(int(v) for v in rng.integers(30, 120, 3)), -1)
    noise = rng.integers(0, 20, img.shape, dtype=np.uint8)
    return np.where(img > 0, cv2.add(img, noise), 0).astype(np.uint8)


def write_image(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def encode(rgb: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def write_mixed_folder(root: Path, good: int = 3) -> dict[str, Path]:
    """Good PNGs plus the usual suspects: truncated JPEG, text named .png, 0-byte file."""
    files = {f"good{i}": write_image(root / f"good{i}.png", cell_image(i)) for i in range(good)}
    jpeg = encode(cell_image(99), ".jpg")
    files["truncated"] = root / "truncated.jpg"
    files["truncated"].write_bytes(jpeg[: len(jpeg) // 2])
    files["text"] = root / "notes.png"
    files["text"].write_text("this is not an image\n")
    files["empty"] = root / "empty.png"
    files["empty"].write_bytes(b"")
    return files


def _spread_logits(model: object, size: int, target_std: float = 2.0) -> None:
    """Rescale the last layer so logits on test cells have median 0 and std `target_std`.

    A random head gives probabilities clustered at 0.5 (or saturated): agreement and parity tests on
    such outputs would prove little.
    """
    import torch

    from leukoscope.preprocess.pipeline import preprocess_image

    cfg = PreprocessConfig(crop="cell", image_size=size)
    batch = np.stack([preprocess_image(cell_image(i), cfg) for i in range(32)])
    x = (torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
    with torch.no_grad():
        logits = model(x)  # type: ignore[operator]
        last = model.head[-1]  # type: ignore[attr-defined]
        scale = target_std / float(logits.std().clamp_min(1e-6))
        last.weight.mul_(scale)
        last.bias.mul_(scale).sub_(float(logits.median()) * scale)
