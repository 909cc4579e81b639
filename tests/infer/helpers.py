"""Small models and images for inference tests: simplecnn at 32 px (builds in a second), cells on black."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from leukoscope.config import PreprocessConfig
from leukoscope.models.card import ModelCard, save_model

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def make_model_dir(
    root: Path,
    *,
    backbone: str = "simplecnn",
    size: int = 32,
    classes: tuple[str, ...] = ("all", "hem"),
    seed: int = 0,
    dropout: float = 0.0,
    logit_std: float = 2.0,
) -> Path:
    """Save a classifier + card whose probabilities spread around 0.5 on `cell_image`s (both classes):
    logits with median 0 and standard deviation `logit_std`."""
    import keras

    from leukoscope.models.backbones import get_backbone
    from leukoscope.models.factory import ClassifierSpec, build_classifier

    keras.utils.set_random_seed(seed)
    spec = ClassifierSpec(backbone, len(classes), size, mean=MEAN, std=STD, dropout=dropout)
    model, feature_layer = build_classifier(spec, weights="none")
    pre = PreprocessConfig(crop="cell", image_size=size, mean=MEAN, std=STD)
    _spread_logits(model, pre, logit_std)
    card = ModelCard(
        backbone=backbone,
        class_names=list(classes),
        positive_class=classes[0] if len(classes) == 2 else None,
        preprocess=pre,
        weights_source="none",
        dropout=dropout,
        input_mode=get_backbone(backbone).input_mode,
        feature_layer=feature_layer,
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


def _spread_logits(model: object, pre: PreprocessConfig, target_std: float = 2.0) -> None:
    """Rescale the logits layer so logits on test cells have median 0 and std `target_std`.

    A random head gives probabilities clustered at 0.5 (or saturated): agreement and parity tests on
    such outputs would prove little.
    """
    from leukoscope.preprocess.pipeline import preprocess_image

    batch = np.stack([preprocess_image(cell_image(i), pre) for i in range(32)]).astype(np.float32)
    logits = np.asarray(model(batch, training=False))  # type: ignore[operator]
    layer = model.get_layer("logits")  # type: ignore[attr-defined]
    kernel, bias = layer.get_weights()
    scale = target_std / max(float(logits.std()), 1e-6)
    layer.set_weights([kernel * scale, (bias - np.median(logits, axis=0)) * scale])
