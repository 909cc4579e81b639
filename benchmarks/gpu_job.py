"""One GPU benchmark process: `python benchmarks/gpu_job.py SPEC.json` (started by `bench_gpu.py`).

It builds this project's classifier (`build_classifier`, random start) with the paper's loss and
optimizer (focal hinge, Adam 1e-5 / 0.7 / 0.999) under one precision policy, then works through its
phases, each behind a barrier file so that the processes compile side by side but measure one
configuration at a time (`benchmarks/gpu_sched.py` releases them):

    compile everything first (a warm-up fit, a warm-up predict call)  -> <name>.compiled
    per phase k:  -> <name>.<k>.ready, wait for <name>.<k>.go ({"start_at", "end_at", "warm_s"}
    wall clock, or {"skip": true}), measure until end_at (all processes of an item over the same
    window)  -> <name>.<k>.done

Batches come from memory (the same few batches again and again: no input pipeline). Training goes
through `model.fit` with a per-step callback, as the workflow's training job runs (its Throughput
callback also waits for every step). Backend-free Keras: TensorFlow or JAX (KERAS_BACKEND); with JAX a
persistent compilation cache lets the sharing processes reuse the first one's compile.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "src"))


class Barrier:
    """The files this process and the scheduler talk through (one folder, one name per process)."""

    def __init__(self, folder: str, name: str) -> None:
        self.folder, self.name = Path(folder), name

    def path(self, k: int, what: str) -> Path:
        return self.folder / f"{self.name}.{k}.{what}"

    def write(self, path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)  # atomic: the scheduler never reads half a file

    def state(self, state: str, k: int = -1) -> None:
        self.write(self.folder / f"{self.name}.state", {"state": state, "phase": k, "at": time.time()})

    def wait_go(self, k: int) -> dict[str, Any]:
        """The scheduler's word for phase k: when to measure, or to skip it."""
        path = self.path(k, "go")
        while True:
            if path.is_file():
                return json.loads(path.read_text())
            if (self.folder / "stop").exists():
                return {"skip": True, "reason": "stopped"}
            time.sleep(0.05)


def _cache(spec: dict[str, Any], keras: Any) -> None:
    """JAX: one persistent compilation cache for all processes (the sharing ones reuse the compile)."""
    if keras.backend.backend() != "jax" or not spec.get("jax_cache"):
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(spec["jax_cache"]))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def devices(keras: Any) -> tuple[list[str], bool]:
    """(device names, on a GPU) as the backend sees them."""
    if keras.backend.backend() == "jax":
        import jax

        found = jax.devices()
        return [d.device_kind for d in found], any(d.platform == "gpu" for d in found)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        return names or ["CPU"], bool(gpus)
    return [keras.backend.backend()], False


class StepClock:
    """Wall-clock end of every training step; stops `fit` at `end_at` (time.time(), shared by processes)."""

    def __init__(self, keras: Any, end_at: float | None) -> None:
        outer = self

        class _Callback(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
                outer.begins.append(time.time())

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                outer.ends.append(time.time())  # logs are pythonified first: the step has finished
                if outer.end_at is not None and outer.ends[-1] >= outer.end_at:
                    self.model.stop_training = True

        self.callback, self.end_at = _Callback(), end_at
        self.begins: list[float] = []
        self.ends: list[float] = []

    def rate(self, batch: int, after: float) -> dict[str, Any]:
        """Images/s over the steps that ended after `after` (the window's warm-up left out)."""
        ends = [t for t in self.ends if t >= after]
        if len(ends) < 2:
            return {"images_per_s": None, "steps": len(ends)}
        span = ends[-1] - ends[0]
        return {"images_per_s": (len(ends) - 1) * batch / span, "steps": len(ends) - 1, "span_s": span}


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    bar = Barrier(spec["sync_dir"], spec["name"])
    bar.state("starting")
    try:
        run(spec, bar)
    except BaseException as exc:  # the scheduler reads the error and skips this process's items
        bar.write(bar.folder / f"{spec['name']}.error", {"error": f"{type(exc).__name__}: {exc}"[:800]})
        raise


def run(spec: dict[str, Any], bar: Barrier) -> None:
    import keras
    import numpy as np

    from leukoscope.losses import get_loss
    from leukoscope.models.factory import ClassifierSpec, build_classifier

    _cache(spec, keras)
    names, on_gpu = devices(keras)
    if not on_gpu and not spec["dry_run"]:
        raise RuntimeError(
            f"Keras ({keras.backend.backend()}) sees no GPU, only {names}: a CUDA build is needed"
        )
    batch, size, predict_batch = int(spec["batch_size"]), int(spec["size"]), int(spec["predict_batch"])
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    images = max(batch * 4, predict_batch)
    x = rng.uniform(0, 255, (images, size, size, 3)).astype("float32")  # content does not change speed
    y = rng.integers(0, 2, (images, 1)).astype("float32")
    keras.mixed_precision.set_global_policy(spec["policy"])
    model, _ = build_classifier(
        ClassifierSpec(spec["backbone"], 2, size, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)), "none"
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-5, beta_1=0.7, beta_2=0.999),
        loss=get_loss(spec["loss"]),
        jit_compile=spec.get("jit_compile", "auto"),
    )
    batches = [(x[i : i + batch], y[i : i + batch]) for i in range(0, batch * 4, batch)]

    def stream() -> Any:
        i = 0
        while True:
            yield batches[i % len(batches)]
            i += 1

    info: dict[str, Any] = {"devices": names, "backend": keras.backend.backend(), "keras": keras.__version__}
    wait_for = spec.get("wait_for")
    if wait_for:  # compile after the first process of the same configuration: its compile is cached
        bar.state("waiting")
        while not Path(wait_for).exists() and not (bar.folder / "stop").exists():
            time.sleep(0.2)
    bar.state("preparing")
    kinds = {phase["kind"] for phase in spec["phases"]}
    if kinds & {"train", "pipeline"}:  # every compile up front: later phases measure with no new one
        clock = StepClock(keras, None)
        t = time.perf_counter()
        model.fit(stream(), steps_per_epoch=3, epochs=1, verbose=0, callbacks=[clock.callback])
        info |= {"first_step_s": clock.ends[0] - clock.begins[0], "warmup_fit_s": time.perf_counter() - t}
        bar.write(bar.folder / f"{bar.name}.compiled", info)  # the processes waiting for this compile go on
    if "predict" in kinds:
        t = time.perf_counter()
        model.predict_on_batch(x[:predict_batch])
        info["predict_first_s"] = time.perf_counter() - t
    for k, phase in enumerate(spec["phases"]):
        bar.write(bar.path(k, "ready"), info)
        bar.state("ready", k)
        order = bar.wait_go(k)
        if order.get("skip"):
            continue
        bar.state("measuring", k)
        result = measure(phase["kind"], model, stream, x, batch, predict_batch, keras, order, phase)
        bar.write(bar.path(k, "done"), result)
    bar.state("finished")


def measure(
    kind: str,
    model: Any,
    stream: Any,
    x: Any,
    batch: int,
    predict_batch: int,
    keras: Any,
    order: dict,
    phase: dict,
) -> dict[str, Any]:
    start_at, end_at, warm = float(order["start_at"]), float(order["end_at"]), float(order["warm_s"])
    time.sleep(max(0.0, start_at - time.time()))
    if kind == "train":
        clock = StepClock(keras, end_at)
        model.fit(stream(), steps_per_epoch=10**7, epochs=1, verbose=0, callbacks=[clock.callback])
        return clock.rate(batch, start_at + warm) | {"total_steps": len(clock.ends)}
    if kind == "predict":
        ends = []
        while not ends or ends[-1] < end_at:
            model.predict_on_batch(x[:predict_batch])  # returns NumPy: the batch has finished
            ends.append(time.time())
        timed = [t for t in ends if t >= start_at + warm]
        if len(timed) < 2:
            return {"images_per_s": None, "steps": len(timed)}
        span = timed[-1] - timed[0]
        return {
            "images_per_s": (len(timed) - 1) * predict_batch / span,
            "steps": len(timed) - 1,
            "span_s": span,
        }
    if kind == "pipeline":
        return pipeline(model, stream, x, batch, keras, order, phase)
    raise ValueError(f"unknown phase {kind!r}")


def pipeline(model: Any, stream: Any, x: Any, batch: int, keras: Any, order: dict, phase: dict) -> dict:
    """TensorFlow only: LeukoScope's training input (flips + rotation in OpenCV threads) with no model,
    then feeding the same compiled model: its own rate and the share of the step the GPU waits for data."""
    import numpy as np

    from leukoscope.preprocess.augment import RandomAugment
    from leukoscope.train.tfdata import ImageSource, training_dataset

    rows = np.arange(int(phase["rows"])) % len(x)
    pixels = np.clip(x, 0, 255).astype(np.uint8)
    source = ImageSource.from_array(pixels, rows, (rows % 2).astype(np.int64))
    augment = RandomAugment(hflip=True, vflip=True, rotation=90.0, clahe_p=0.0)
    ds, _ = training_dataset(source, batch_size=batch, seed=42, augment=augment, binary=True, epochs=1)
    t = time.perf_counter()
    count = sum(int(b.shape[0]) for b, _ in ds)
    alone = count / (time.perf_counter() - t)
    steps = int(phase["steps"])
    fed, _ = training_dataset(
        source, batch_size=batch, seed=42, augment=augment, binary=True, epochs=100, max_steps=steps
    )
    clock = StepClock(keras, None)
    model.fit(fed, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[clock.callback])
    fed_rate = clock.rate(batch, clock.ends[min(2, len(clock.ends) - 1)])["images_per_s"]
    clock = StepClock(keras, None)
    model.fit(stream(), steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[clock.callback])
    memory_rate = clock.rate(batch, clock.ends[min(2, len(clock.ends) - 1)])["images_per_s"]
    import tensorflow as tf

    return {
        "pipeline_alone_images_per_s": alone,
        "fed_images_per_s": fed_rate,
        "memory_images_per_s": memory_rate,
        "data_wait_pct": 100 * max(0.0, 1 - fed_rate / memory_rate) if fed_rate and memory_rate else None,
        "cpu_threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
    }


if __name__ == "__main__":
    main(sys.argv[1])
