"""GPU: training images/s per precision and XLA setting, whether the input pipeline keeps up, Table 2's hours.

Run by `benchmarks/gpu.sh` on a machine with a GPU (< 8 minutes; `--dry-run` proves it on a CPU). The
measurements run in `benchmarks/gpu_job.py` (one process, results saved after every item, a deadline
that skips what no longer fits); this module turns them into figures and the projection:

    job hours = epochs x (20,050 / training images/s + validation images / inference images/s) + first call
    one GPU  = the grid's jobs one after another (the workflow never puts two jobs on one GPU)
    ten GPUs = the same jobs spread over ten GPUs, longest first (one job per GPU for the 10-job grid)

with the fastest measured configuration of each backbone, the epochs of config.yaml (an upper bound:
early stopping ends most runs sooner), its grid (backbones x losses) and its augmented set size; the
validation split is taken as a third of C-NMC's 10,661 training images (fold 2). Data preparation (crop,
augment, stats: minutes, once) and evaluation are not in it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, CpuShare, Figure, Settings, gpu_names, log
from benchmarks.procs import run_measured

MODELS = {"densenet201": 224, "efficientnetb2": 260}
VAL_IMAGES = round(10_661 / 3)  # C-NMC's fold 2 (about a third of the training folds)
WAIT_TARGET = 5.0
DEADLINE_S = 400.0  # the measuring process's own budget (gpu.sh's limit is 470 s in all)


class NoGpu(RuntimeError):
    """The GPU benchmark was asked for where no GPU is visible (and not as a dry run)."""


def grid() -> tuple[list[str], list[str], int, int]:
    """(backbones, losses, epochs, training samples) of the repository's config.yaml."""
    import yaml

    from leukoscope.workflow.config import WorkflowConfig

    cfg = WorkflowConfig.from_dict(yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8")))
    return (
        list(cfg.grid.backbones),
        list(cfg.grid.losses),
        int(cfg.train.epochs),
        sum(cfg.augment.target.values()),
    )


def spread(durations: list[float], gpus: int) -> float:
    """Makespan of the jobs on `gpus` GPUs, longest job first onto the least loaded GPU."""
    loads = [0.0] * gpus
    for d in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


def run(settings: Settings, out_dir: Path) -> tuple[list[Figure], dict[str, Any]]:
    dry = settings.dry_run
    if not dry and not gpu_names():
        raise NoGpu("no GPU is visible (nvidia-smi): run benchmarks/gpu.sh on a GPU machine, or --dry-run")
    models = {"simplecnn": 32} if dry else MODELS
    spec = {
        "dry_run": dry,
        "models": models,
        "batch_size": 8 if dry else 32,
        "steps": 2 if dry else 20,
        "warm_steps": 1 if dry else 3,
        "cells": 16 if dry else 512,
        "pipeline_rows": 64 if dry else 4096,
        "deadline_s": 120.0 if dry else DEADLINE_S,
        "budget_per_config_s": 5.0 if dry else 40.0,
        # the order matters (a deadline drops the tail); a dry run leaves out float32 + XLA, the same path
        "plan": [["float32", False], ["mixed", False], ["mixed", True], ["pipeline", None]]
        + ([] if dry else [["float32", True]]),
    }
    folder = settings.work / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    spec_path, result_path, log_path = (folder / f"gpu.{ext}" for ext in ("spec.json", "result.json", "log"))
    spec_path.write_text(json.dumps(spec, indent=1))
    result_path.unlink(missing_ok=True)
    log(f"gpu: {'dry run on the CPU' if dry else ', '.join(gpu_names())}; measuring in {log_path}")
    cmd = [sys.executable, str(REPO / "benchmarks" / "gpu_job.py"), str(spec_path), str(result_path)]
    with CpuShare() as share:
        proc = run_measured(cmd, cwd=REPO, log_path=log_path, timeout=spec["deadline_s"] + 60)
    if not result_path.is_file():
        tail = log_path.read_text(errors="replace")[-3000:] if log_path.is_file() else ""
        raise RuntimeError(f"gpu_job.py wrote no result (rc {proc['rc']}):\n{tail}")
    res = json.loads(result_path.read_text())
    figures = config_figures(res, share.result) + pipeline_figures(res, share.result)
    figures += projection_figures(res, dry)
    if res["skipped"] or not res.get("complete"):
        figures.append(
            Figure(
                "gpu",
                "configurations skipped for the time budget",
                float(len(res["skipped"])),
                "",
                note=", ".join(res["skipped"]) or f"the process stopped early (rc {proc['rc']})",
            )
        )
    return figures, {"result": res, "process": proc}


def config_figures(res: dict[str, Any], cpu: dict[str, Any]) -> list[Figure]:
    figures = []
    base = {
        c["backbone"]: c
        for c in res["configs"]
        if "error" not in c and c["policy"] == "float32" and not c["xla"]
    }
    device = ", ".join(res["gpus"]) or "CPU (dry run)"
    for c in res["configs"]:
        if "error" in c:
            figures.append(Figure("gpu", f"{c['name']} train images/s", None, "images/s", note=c["error"]))
            continue
        b = base.get(c["backbone"])
        ratio = c["images_per_s"] / b["images_per_s"] if b and b is not c else None
        figures.append(
            Figure(
                "gpu",
                f"{c['name']} train images/s",
                c["images_per_s"],
                "images/s",
                baseline=b["images_per_s"] if ratio else None,
                ratio=ratio,
                note=f"{device}; batch {res['batch_size']}, median of {c['steps']} steps from memory "
                f"(model.fit), first call (trace/compile) {c['first_s']:.0f} s; baseline = float32, XLA off",
                cpu=cpu,
            )
        )
    return figures


def pipeline_figures(res: dict[str, Any], cpu: dict[str, Any]) -> list[Figure]:
    figures = []
    best = {c["name"]: c for c in res["configs"] if "error" not in c}
    for backbone, p in res["pipeline"].items():
        train = best[p["config"]]["images_per_s"]
        ratio = p["pipeline_alone_images_per_s"] / train
        figures.append(
            Figure(
                "gpu",
                f"{backbone}: input pipeline alone vs GPU training ({p['config']})",
                p["pipeline_alone_images_per_s"],
                "images/s",
                baseline=train,
                ratio=ratio,
                target=">= 1x",
                met=ratio >= 1.0,
                note="leukoscope's training_dataset (flips + rotation in OpenCV threads, "
                f"{p['cpu_threads'] or 'all'} intra-op threads) with no model, vs the fastest training step",
                cpu=cpu,
            )
        )
        figures.append(
            Figure(
                "gpu",
                f"{backbone}: data wait with the pipeline feeding the GPU, % of step time",
                p["data_wait_pct"],
                "%",
                target=f"< {WAIT_TARGET:.0f}%",
                met=p["data_wait_pct"] < WAIT_TARGET,
                note=f"step {p['fed_step_s'] * 1000:.1f} ms fed by the pipeline vs "
                f"{p['memory_step_s'] * 1000:.1f} ms from memory, same compiled model",
                cpu=cpu,
            )
        )
    return figures


def projection_figures(res: dict[str, Any], dry: bool) -> list[Figure]:
    backbones, losses, epochs, samples = grid()
    best: dict[str, dict[str, Any]] = {}
    for c in res["configs"]:
        if "error" not in c and (
            c["backbone"] not in best or c["images_per_s"] > best[c["backbone"]]["images_per_s"]
        ):
            best[c["backbone"]] = c
    if dry:  # the dry run's one tiny network stands in for every backbone of the grid
        backbones = [next(iter(best))] if best else []
    missing = [b for b in backbones if b not in best or b not in res["pipeline"]]
    if missing:
        return [Figure("gpu", "Table 2 grid projection", None, "h",
                       note=f"not measured for {', '.join(missing)} (skipped or failed)")]  # fmt: skip
    jobs, parts = [], []
    for b in backbones:
        c, p = best[b], res["pipeline"][b]
        hours = (
            epochs * (samples / c["images_per_s"] + VAL_IMAGES / p["inference_images_per_s"]) + c["first_s"]
        ) / 3600
        jobs += [hours] * len(losses)
        parts.append(f"{b} {hours:.2f} h per job ({c['name']}: {c['images_per_s']:.0f} train / "
                     f"{p['inference_images_per_s']:.0f} inference images/s)")  # fmt: skip
    base = (f"{len(jobs)} jobs ({len(backbones)} backbones x {len(losses)} losses), {epochs} epochs of "
            f"{samples:,} samples + {VAL_IMAGES:,} validation images each (config.yaml; early stopping "
            f"makes it an upper bound); " + "; ".join(parts))  # fmt: skip
    if dry:
        base = "DRY RUN (tiny CNN on the CPU, not a projection of anything): " + base
    one, ten = sum(jobs), spread(jobs, 10)
    return [
        Figure("gpu", "Table 2 grid on one GPU (projected)", one, "h", note=base),
        Figure("gpu", "Table 2 grid on ten GPUs (projected)", ten, "h", baseline=one, ratio=one / ten,
               note="longest job first onto the least loaded GPU; ratio = one GPU / ten"),
    ]  # fmt: skip
