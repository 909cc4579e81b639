"""The GPU measurements, in one process: `python benchmarks/gpu_job.py SPEC.json RESULT.json`.

Per backbone x precision (float32 / the mixed policy LeukoScope picks for this GPU) x XLA (off / on):
the paper's network (`build_classifier`, random start), compiled as the training job compiles it, trained
by `model.fit` on batches held in memory (no input pipeline): epoch 1 traces / compiles, epoch 2 is
timed. Then, for the fastest configuration per backbone, the same fit fed by LeukoScope's training
pipeline (`training_dataset`: flips + rotation in OpenCV threads) over synthetic cells: the share of the
step the GPU waits for data; the pipeline's own rate with no model; and inference images/s (validation).
A deadline keeps the whole script within its budget: configurations left when it is near are skipped and
said so. `dry_run` runs every code path on the CPU with a tiny CNN.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "src"))


def elapsed() -> float:
    return time.perf_counter() - T0


def main(spec_path: str, result_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import keras
    import numpy as np
    import tensorflow as tf

    from benchmarks import data as bdata
    from benchmarks.timing import StepTimer, median
    from leukoscope.losses import get_loss
    from leukoscope.models.factory import ClassifierSpec, build_classifier
    from leukoscope.preprocess.augment import RandomAugment
    from leukoscope.train import hardware
    from leukoscope.train.input import ImageSource, training_dataset

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    dry = bool(spec["dry_run"])
    mixed = "mixed_bfloat16" if dry else hardware.resolve_precision("auto", on_gpu=True)
    batch, steps, warm = int(spec["batch_size"]), int(spec["steps"]), int(spec["warm_steps"])
    deadline = float(spec["deadline_s"])
    result: dict[str, Any] = {
        "gpus": [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus],
        "mixed_policy": mixed,
        "configs": [],
        "pipeline": {},
        "skipped": [],
        "dry_run": dry,
        "batch_size": batch,
    }

    cells: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def images(size: int) -> tuple[np.ndarray, np.ndarray]:
        if size not in cells:
            cells[size] = bdata.cell_images(int(spec["cells"]), size)
        return cells[size]

    def model_for(backbone: str, size: int, policy: str, xla: bool) -> Any:
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy(policy)
        x, _ = images(size)
        mean = tuple(float(v) for v in (x.reshape(-1, 3).mean(0) / 255))
        std = tuple(float(v) for v in (x.reshape(-1, 3).std(0) / 255 + 1e-3))
        model, _ = build_classifier(ClassifierSpec(backbone, 2, size, mean=mean, std=std), "none")
        model.compile(
            optimizer=keras.optimizers.Adam(1e-5, beta_1=0.7, beta_2=0.999),
            loss=get_loss("bce"),
            jit_compile=xla,
        )
        return model

    def memory_batches(size: int) -> Any:
        x, y = images(size)
        reps = -(-batch * (steps + warm) // len(x))
        xs = np.concatenate([x] * reps)[: batch * (steps + warm)].astype("float32")
        ys = np.concatenate([y] * reps)[: batch * (steps + warm)].astype("float32").reshape(-1, 1)
        return tf.data.Dataset.from_tensor_slices((xs, ys)).batch(batch).repeat().prefetch(2)

    def timed_fit(model: Any, dataset: Any) -> dict[str, Any]:
        timer = StepTimer()
        t = time.perf_counter()
        model.fit(dataset, epochs=1, steps_per_epoch=warm, verbose=0, callbacks=[timer])
        first = time.perf_counter() - t
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
        step = median(timer.epochs[-1]["step_s"])
        return {"first_s": first, "step_s": step, "images_per_s": batch / step, "steps": steps}

    best: dict[str, dict[str, Any]] = {}
    best_model: dict[str, Any] = {}  # kept: the pipeline check reuses its compiled train function
    per_config = float(spec["budget_per_config_s"])
    models = dict(spec["models"])
    augment = RandomAugment(hflip=True, vflip=True, rotation=90.0, clahe_p=0.0)

    def save() -> None:
        result["elapsed_s"] = elapsed()
        Path(result_path).write_text(json.dumps(result, indent=1))  # after every item: a kill keeps them

    def train_config(backbone: str, policy: str, xla: bool) -> None:
        size = models[backbone]
        name = f"{backbone} @{size} {policy} XLA {'on' if xla else 'off'}"
        if elapsed() + per_config > deadline:
            result["skipped"].append(name)
            return
        t = time.perf_counter()
        try:
            model = model_for(backbone, size, policy, xla)
            res = timed_fit(model, memory_batches(size))
        except Exception as exc:  # an XLA or precision failure is a result, not a crash
            result["configs"].append({"name": name, "error": f"{type(exc).__name__}: {exc}"[:500]})
            return
        res |= {"name": name, "backbone": backbone, "size": size, "policy": policy, "xla": xla,
                "seconds": time.perf_counter() - t}  # fmt: skip
        result["configs"].append(res)
        print(f"{name}: {res['images_per_s']:.1f} img/s (first call {res['first_s']:.0f} s)", flush=True)
        if backbone not in best or res["images_per_s"] > best[backbone]["images_per_s"]:
            best[backbone], best_model[backbone] = res, model

    def pipeline_check(backbone: str) -> None:
        if backbone not in best:
            return
        res, size = best[backbone], models[backbone]
        if elapsed() + per_config > deadline:
            result["skipped"].append(f"{backbone} pipeline check")
            return
        x, y = images(size)
        rows = np.arange(int(spec["pipeline_rows"])) % len(x)
        source = ImageSource.from_array(x, rows, y[rows])
        ds, _ = training_dataset(source, batch_size=batch, seed=42, augment=augment, binary=True, epochs=1)
        t = time.perf_counter()
        count = sum(int(b.shape[0]) for b, _ in ds)
        alone = count / (time.perf_counter() - t)
        model = best_model[backbone]
        piped, _ = training_dataset(source, batch_size=batch, seed=42, augment=augment, binary=True,
                                    epochs=100, max_steps=steps + warm)  # fmt: skip
        fed = timed_fit(model, piped)  # same input signature: no new trace
        model.predict(memory_batches(size).take(max(2, steps // 2)), verbose=0)  # traces predict
        n_pred = batch * max(2, steps // 2)
        t = time.perf_counter()
        model.predict(memory_batches(size).take(max(2, steps // 2)), verbose=0)
        infer = n_pred / (time.perf_counter() - t)
        result["pipeline"][backbone] = {
            "config": res["name"],
            "pipeline_alone_images_per_s": alone,
            "fed_step_s": fed["step_s"],
            "memory_step_s": res["step_s"],
            "data_wait_pct": 100 * max(0.0, fed["step_s"] - res["step_s"]) / fed["step_s"],
            "inference_images_per_s": infer,
            "cpu_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        }
        print(f"{backbone} pipeline: alone {alone:.0f} img/s, data wait "
              f"{result['pipeline'][backbone]['data_wait_pct']:.1f}%", flush=True)  # fmt: skip

    # most telling first, so a deadline drops the least: fp32, mixed, mixed + XLA, data, fp32 + XLA
    plan = [tuple(item) for item in spec["plan"]]
    for item in plan:
        if item[0] == "pipeline":
            for backbone in models:
                pipeline_check(backbone)
                save()
            continue
        policy, xla = (mixed if item[0] == "mixed" else "float32"), bool(item[1])
        for backbone in models:
            train_config(backbone, policy, xla)
            save()
    result["complete"] = True
    save()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
