"""What a user of the paper's era writes: `model.fit` over `ImageDataGenerator.flow_from_directory`.

    python benchmarks/baseline_train.py SPEC.json RESULT.json

The same network as the workflow job (`build_classifier`: backbone + the paper's head, the training set's
mean/std inside the model), the same optimiser (Adam 1e-5, betas 0.7 / 0.999), batch, image size, steps
and augmentations (flips, rotations up to 90 degrees, black fill), on the same images written as BMP
files in a folder per class; validation on the same images as the job's. Keras 3 keeps
`ImageDataGenerator` only in `keras.src.legacy.preprocessing.image` (it left `keras.preprocessing.image`).
The only addition is the benchmarks' `StepTimer` callback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

T0 = time.perf_counter()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(spec_path: str, result_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import keras
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    from benchmarks.timing import StepTimer, status_gib
    from leukoscope.models.factory import ClassifierSpec, build_classifier

    import_s = time.perf_counter() - T0
    stats = json.loads((Path(spec["artifact"]) / "stats.json").read_text())
    size, batch = int(spec["image_size"]), int(spec["batch_size"])
    model, _ = build_classifier(
        ClassifierSpec(spec["backbone"], 2, size, mean=tuple(stats["mean"]), std=tuple(stats["std"])), "none"
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-5, beta_1=0.7, beta_2=0.999),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)],
    )
    augment = ImageDataGenerator(
        horizontal_flip=True, vertical_flip=True, rotation_range=90, fill_mode="constant", cval=0.0
    )
    train = augment.flow_from_directory(
        spec["files"], target_size=(size, size), batch_size=batch, class_mode="binary", seed=42
    )
    val = ImageDataGenerator().flow_from_directory(
        spec["val_files"], target_size=(size, size), batch_size=batch, class_mode="binary", shuffle=False
    )
    timer = StepTimer()
    t = time.perf_counter()
    model.fit(
        train,
        steps_per_epoch=int(spec["steps"]),
        epochs=int(spec["epochs"]),
        validation_data=val,
        callbacks=[timer],
        verbose=2,
    )
    result = {
        "import_s": import_s,
        "fit_s": time.perf_counter() - t,
        "epochs": timer.epochs,
        "train_files": train.samples,
        "val_files": val.samples,
        "rss_hwm_gib": status_gib("VmHWM"),
        "wall_s": time.perf_counter() - T0,
    }
    Path(result_path).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
