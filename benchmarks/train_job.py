"""The workflow's training job, timed: `python benchmarks/train_job.py SPEC.json RESULT.json`.

What the train rule (`workflow/scripts/train.py`) does, minus Snakemake: the job's RunConfig from the
repository's `config.yaml` through `leukoscope.workflow.config.run_config`, its inputs from the
augment / stats / crop artifacts through `leukoscope.train.artifacts.load_fit_inputs`, then
`leukoscope.train.fit.fit_inputs`. The only additions are instruments: a `StepTimer` callback appended to
the job's own callbacks, and the resident high-water mark read when `fit_inputs` returns.

The timer also times the compiled train function inside every step (see `benchmarks.timing`). With
`extras`, the trained (still compiled) model then runs `model.train_function` directly on batches of the
same pipeline held in memory: the bare compiled train step, no input pipeline, no Keras loop (the traced
function is reused: same input signature, so no tracing is timed).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def workflow_config(spec: dict[str, Any]) -> Any:
    """config.yaml (the paper's recipe) with the benchmark's sizes, or with the CPU recipe's network and
    optimiser."""
    import yaml

    from leukoscope.config import RunConfig
    from leukoscope.workflow.config import WorkflowConfig

    data = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    train, optim = data.setdefault("train", {}), data.setdefault("optim", {})
    if spec["recipe"] == "cpu":  # configs/cpu-fast.yaml's network, size and optimiser on the workflow job
        cpu = RunConfig.from_yaml(REPO / "configs" / "cpu-fast.yaml")
        train |= {"batch_size": cpu.train.batch_size, "precision": cpu.train.precision}
        optim |= {"name": cpu.optim.name, "lr": cpu.optim.lr, "betas": list(cpu.optim.betas),
                  "scheduler": cpu.optim.scheduler}  # fmt: skip
    data.setdefault("preprocess", {})["image_size"] = spec["image_size"]
    data.setdefault("model", {})["weights"] = "none"  # offline: random start (speed does not depend on it)
    train |= {
        "epochs": spec["epochs"],
        "max_steps_per_epoch": spec["steps"],
        "patience": None,
    }
    if spec.get("batch_size"):
        train["batch_size"] = spec["batch_size"]
    if spec.get("precision"):
        train["precision"] = spec["precision"]
    return WorkflowConfig.from_dict(data)


def main(spec_path: str, result_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    from leukoscope.workflow import machine as gpus

    gpus.set_threads(int(spec.get("threads") or os.cpu_count() or 1))  # the rule's `threads`: all cores

    import pandas as pd

    from leukoscope.train import session
    from leukoscope.train.artifacts import load_fit_inputs
    from leukoscope.train.fit import fit_inputs
    from leukoscope.workflow.config import run_config

    import_s = time.perf_counter() - T0
    from benchmarks.timing import StepTimer, status_gib

    art = Path(spec["artifact"])
    out, state = Path(spec["out"]), Path(spec["state_dir"])
    wcfg = workflow_config(spec)
    backbone = spec["backbone"]
    cfg = run_config(wcfg, backbone, "bce", out=out, state_dir=state, crop="cell")  # the artifact's crop
    val_rows = pd.read_parquet(art / "val-subset.parquet")  # the baseline's val files: the same images
    inputs = load_fit_inputs(
        shards=sorted(art.glob("shard-*.npy")),
        index_path=art / "augment-index.parquet",
        val_images=art / "val.npy",
        val_rows=val_rows,
        stats_path=art / "stats.json",
        samples_summary=json.loads((art / "summary.json").read_text()),
        preprocess=cfg.preprocess,
    )

    timer = StepTimer()
    holder: dict[str, Any] = {}
    own_callbacks = session.TrainingJob.callbacks
    own_run = session.TrainingJob.run

    def callbacks(self: Any, state: Any, *args: Any) -> list[Any]:
        holder["job"] = self
        return [*own_callbacks(self, state, *args), timer]

    def run(self: Any) -> Any:
        holder["job"] = self
        return own_run(self)

    session.TrainingJob.callbacks = callbacks  # type: ignore[method-assign]
    session.TrainingJob.run = run  # type: ignore[method-assign]
    rss_before = status_gib("VmHWM")
    t = time.perf_counter()
    fit_inputs(inputs, cfg, out)
    fit_s = time.perf_counter() - t
    job = holder["job"]
    result: dict[str, Any] = {
        "backbone": backbone,
        "image_size": spec["image_size"],
        "batch_size": cfg.train.batch_size,
        "recipe": spec["recipe"],
        "train_images": len(inputs.train),
        "val_images": len(inputs.val),
        "precision": job.policy,
        "jit_compile": job.jit,
        "placement": job.placement.description,
        "import_s": import_s,
        "fit_inputs_s": fit_s,
        "epochs": timer.epochs,
        "rss_hwm_gib_before_fit": rss_before,
        "rss_hwm_gib": status_gib("VmHWM"),  # the job's peak: fit_inputs has returned, nothing else ran
        "rss_anon_gib_end": status_gib("RssAnon"),
        "rss_file_gib_end": status_gib("RssFile"),
        "model_files": sorted(p.name for p in out.iterdir()),
        "threads": os.environ.get("LEUKOSCOPE_THREADS"),
    }
    if spec.get("extras"):
        result["extras"] = extras(job, cfg, spec)
    result["wall_s"] = time.perf_counter() - T0
    Path(result_path).write_text(json.dumps(result, indent=1))


def extras(job: Any, cfg: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """The bare compiled train step: `model.train_function` called directly on batches held in memory.

    The batches are the job's own pipeline's first ones, materialised (the time that takes is the
    pipeline alone, with the whole machine); the dataset has the job's element spec, so the traced
    function is reused.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from benchmarks.timing import median
    from leukoscope.preprocess.augment import RandomAugment
    from leukoscope.train.tfdata import training_dataset

    model, steps = job.trained, int(spec["extra_steps"])
    augment = RandomAugment.from_config(cfg.augment, cfg.preprocess.clahe_grid)
    ds, _ = training_dataset(
        job.inputs.train, batch_size=cfg.train.batch_size, seed=cfg.train.seed, augment=augment,
        binary=job.inputs.binary, epochs=1, max_steps=steps,
    )  # fmt: skip
    t = time.perf_counter()
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    alone = (time.perf_counter() - t) / max(1, len(xs))
    memory = tf.data.Dataset.from_tensor_slices((np.concatenate(xs), np.concatenate(ys)))
    memory = memory.batch(cfg.train.batch_size).repeat()  # same element spec as the job's (None, S, S, 3)
    iterator = iter(memory)
    bare: list[float] = []
    for _ in range(steps):
        t = time.perf_counter()
        logs = model.train_function(iterator)
        float(keras.ops.convert_to_numpy(logs["loss"]))
        bare.append(time.perf_counter() - t)
    return {"pipeline_alone_s_per_batch": alone, "bare_step_s": bare, "bare_median_s": median(bare)}


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
