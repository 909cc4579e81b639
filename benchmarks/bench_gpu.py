"""GPU: this project's networks training alone, in bf16, and 2-3 jobs sharing one GPU; Table 2's hours.

Run by `benchmarks/gpu.sh` on a machine with a GPU (< 8 minutes; `--dry-run` proves it on a CPU). It
needs Keras with a backend only, TensorFlow or JAX (`KERAS_BACKEND=jax` where TensorFlow is absent: the
models and losses are backend-free Keras). Five processes (`gpu_job.py`) train this project's classifier
(`build_classifier`, random start; focal hinge; Adam 1e-5 / 0.7 / 0.999; batch 32 from memory):

    b2_fp32_a / _b / _c   EfficientNetB2 @260 float32: alone, then 2 and 3 of them sharing the GPU
    b2_bf16               EfficientNetB2 @260 mixed_bfloat16, alone
    dn_fp32               DenseNet201 @224 float32, alone

They compile side by side (with JAX, _b and _c reuse _a's compile from a persistent cache), then
`gpu_sched.py` measures one item at a time; predict images/s at batch 256 per configuration follow.
With TensorFlow installed, LeukoScope's tf.data input pipeline is measured too; without it, its per-job
rate is projected from a CPU measurement. Figures and Table 2's projected hours: `gpu_figures.py`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.common import CpuShare, Figure, Settings, gpu_names, log
from benchmarks.gpu_figures import (
    input_projection,
    pipeline_figures,
    projection_figures,
    train_figures,
)
from benchmarks.gpu_sched import Item, Scheduler

MODELS = {"b2": ("efficientnetb2", 260), "dn": ("densenet201", 224)}
DRY_MODELS = {"b2": ("simplecnn", 32), "dn": ("simplecnn", 40)}
# the scheduler's own budget from the benchmark's start (gpu.sh kills 40 s later); GPU_BENCH_BUDGET_S
# shortens it where device time is scarce (what no longer fits is skipped, and said so)
DEADLINE_S = float(os.environ.get("GPU_BENCH_BUDGET_S", "430"))
T0 = time.monotonic()


class NoGpu(RuntimeError):
    """The GPU benchmark was asked for where no GPU is visible (and not as a dry run)."""


def has_tensorflow() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def plan(dry: bool, tensorflow: bool, sync: Path, cache: Path | None) -> tuple[dict[str, dict], list[Item]]:
    """The processes (spec per process, phases in order) and the items, most telling first."""
    models = DRY_MODELS if dry else MODELS
    base = {
        "batch_size": 8 if dry else 32,
        "predict_batch": 16 if dry else 256,
        "loss": "focal_hinge",
        "dry_run": dry,
        "jax_cache": str(cache) if cache else None,
    }

    def proc(model: str, policy: str, phases: list[str], **extra: Any) -> dict[str, Any]:
        backbone, size = models[model]
        kinds = [
            ("predict" if p.endswith("_predict") else "pipeline" if p == "pipeline" else "train")
            for p in phases
        ]
        steps = {"rows": 64 if dry else 2048, "steps": 6 if dry else 30}
        return base | {
            "backbone": backbone,
            "size": size,
            "policy": policy,
            **extra,
            "phases": [{"item": p, "kind": k, **steps} for p, k in zip(phases, kinds, strict=True)],
        }

    a_phases = ["b2_fp32", "share2", "share3", "b2_fp32_predict"]
    a_phases += (["pipeline"] if tensorflow else []) + ["b2_fp32_again"]
    specs = {
        "b2_fp32_a": proc("b2", "float32", a_phases),
        "b2_fp32_b": proc("b2", "float32", ["share2", "share3"], wait_for=str(sync / "b2_fp32_a.compiled")),
        "b2_fp32_c": proc("b2", "float32", ["share3"], wait_for=str(sync / "b2_fp32_a.compiled")),
        "b2_bf16": proc("b2", "mixed_bfloat16", ["b2_bf16", "b2_bf16_predict"]),
        "dn_fp32": proc("dn", "float32", ["dn_fp32", "dn_fp32_predict"]),
    }
    warm, train_s, share_s, pred_warm, pred_s = (0.3, 1.0, 1.0, 0.2, 0.5) if dry else (2, 8, 10, 1, 5)
    items = [
        Item("b2_fp32", "train", train_s, warm),
        Item("b2_bf16", "train", train_s, warm),
        Item("share2", "train", share_s, warm),
        Item("share3", "train", share_s, warm),
        Item("dn_fp32", "train", train_s, warm),
        Item("b2_fp32_predict", "predict", pred_s, pred_warm),
        Item("b2_bf16_predict", "predict", pred_s, pred_warm),
        Item("dn_fp32_predict", "predict", pred_s, pred_warm),
        Item("pipeline", "pipeline", 0.0, 0.0, timeout_s=60 if dry else 150),
        Item("b2_fp32_again", "train", train_s, warm, optional=True, repeat_of="b2_fp32"),
    ]
    return specs, [i for i in items if tensorflow or i.kind != "pipeline"]


def run(settings: Settings, out_dir: Path) -> tuple[list[Figure], dict[str, Any]]:
    dry = settings.dry_run
    if not dry and not gpu_names():
        raise NoGpu("no GPU is visible (nvidia-smi): run benchmarks/gpu.sh on a GPU machine, or --dry-run")
    folder = settings.work / "runs" / "gpu"
    shutil.rmtree(folder, ignore_errors=True)  # a fresh compile cache too: compile times are measured
    folder.mkdir(parents=True)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    tensorflow = has_tensorflow()
    specs, items = plan(dry, tensorflow, folder / "sync", folder / "jax-cache" if backend == "jax" else None)
    result_path = folder / "result.json"
    res: dict[str, Any] = {
        "dry_run": dry,
        "backend": backend,
        "tensorflow_installed": tensorflow,
        "gpus": gpu_names(),
        "batch_size": specs["b2_fp32_a"]["batch_size"],
        "predict_batch": specs["b2_fp32_a"]["predict_batch"],
        "loss": "focal_hinge",
        "budget_s": 240.0 if dry else DEADLINE_S,
    }

    def save(partial: dict[str, Any]) -> None:  # after every item: a kill keeps what was measured
        res.update(partial, elapsed_s=time.monotonic() - T0)
        result_path.write_text(json.dumps(res, indent=1))

    log(
        f"gpu: {'dry run on the CPU' if dry else ', '.join(res['gpus'])}, Keras on {backend}; "
        f"{len(specs)} processes, logs in {folder / 'sync'}"
    )
    env = os.environ | {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    sched = Scheduler(folder / "sync", specs, items, T0 + res["budget_s"], save, env=env)
    with CpuShare() as share:
        sched.run()
    res["complete"] = all(r["status"] in ("ok", "unneeded") for r in res["items"])
    res["input_projection"] = input_projection(res)
    save({})
    figures = train_figures(res, share.result) + pipeline_figures(res, share.result)
    figures += projection_figures(res, dry)
    missed = [f"{r['name']} ({r['reason']})" for r in res["items"] if r["status"] not in ("ok", "unneeded")]
    if missed:
        figures.append(Figure("gpu", "items not measured", float(len(missed)), "", note="; ".join(missed)))
    return figures, {"result": res}
