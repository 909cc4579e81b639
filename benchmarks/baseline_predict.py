"""What a user writes to classify a folder with a trained Keras model: load, read, `model.predict`.

    python benchmarks/baseline_predict.py MODEL_DIR IMAGE_DIR OUT.csv

The same model file (`model.keras`) and the same preprocessing as training (the card's crop to the cell
and resize, `leukoscope.preprocess.preprocess_image`: without it the labels would not be comparable),
images read one after another with OpenCV, then one batched `model.predict(batch_size=32)`; the logit is
turned into P(positive class) with a sigmoid and thresholded at the card's threshold.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def main(model_dir: str, image_dir: str, out: str) -> None:
    import cv2
    import keras
    import numpy as np

    import leukoscope.models.layers  # noqa: F401  (the model's registered custom layers)
    from leukoscope.models.card import ModelCard
    from leukoscope.preprocess import preprocess_image

    card = ModelCard.from_dict(json.loads((Path(model_dir) / "model_card.json").read_text()))
    model = keras.saving.load_model(str(Path(model_dir) / "model.keras"), compile=False)
    paths = sorted(p for p in Path(image_dir).rglob("*") if p.suffix.lower() in (".bmp", ".png", ".jpg"))
    images = np.stack(
        [preprocess_image(cv2.imread(str(p), cv2.IMREAD_COLOR)[..., ::-1], card.preprocess) for p in paths]
    )
    logits = model.predict(images.astype("float32"), batch_size=32, verbose=0)[:, 0]
    p_positive = 1.0 / (1.0 + np.exp(-logits / card.temperature))
    negative = next(c for c in card.class_names if c != card.positive_class)
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "p_positive"])
        for path, p in zip(paths, p_positive, strict=True):
            writer.writerow([str(path), card.positive_class if p >= card.threshold else negative, f"{p:.6f}"])


if __name__ == "__main__":
    main(*sys.argv[1:4])
