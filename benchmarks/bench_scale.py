"""Scale-out: `leukoscope train` on 1 vs 2 DDP processes (CPU, gloo); GPUs only where a GPU is present.

Each process keeps the batch size (DDP's usual weak scaling: 2 processes = 2 x 32 images per step) and
Lightning gives each process cores / processes threads. Images/s counts all ranks, over the second epoch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmarks import data as bdata
from benchmarks.bench_train import leukoscope_train
from benchmarks.common import CpuShare, Figure, Settings, log


def run(settings: Settings, out_dir: Path) -> tuple[list[Figure], dict[str, Any]]:
    import torch

    backbone, size = "tf_efficientnet_lite0", settings.pick(224, 64)
    batch, steps = settings.pick(32, 4), settings.pick(8, 2)
    root = bdata.train_set(settings)
    cache = settings.work / "cache-train"
    figures: list[Figure] = []
    extra: dict[str, Any] = {"runs": {}}
    rates: dict[int, float] = {}
    for procs in (1, 2):
        args = ("--accelerator", "cpu", "--devices", str(procs))
        if procs > 1:
            args += ("--strategy", "ddp")
        out = settings.work / "runs" / f"scale-cpu-{procs}{'-tiny' if settings.tiny else ''}"
        log(f"scale: {procs} CPU process(es), {steps} steps/epoch x 2 epochs")
        with CpuShare() as share:
            res = leukoscope_train(
                settings, root, backbone, size, batch, steps, out, "bundled", cache, extra_args=args
            )
        rates[procs] = res["images_per_s"]
        log(f"  {rates[procs]:.1f} images/s (all ranks), data wait {100 * res['data_wait_fraction']:.0f}%")
        extra["runs"][f"cpu-{procs}"] = res
        r = rates[procs] / rates[1]
        threads = res.get("threads_per_process")
        note = (
            f"{backbone} @{size}, batch {batch} per process, epoch 2 of 2; {procs} process(es) x {threads} "
            f"torch threads on {os.cpu_count()} cores; data wait {100 * res['data_wait_fraction']:.0f}%"
        )
        figures.append(
            Figure(
                "scale",
                "CPU, 1 process images/s" if procs == 1 else f"CPU DDP, {procs} processes (gloo) images/s",
                rates[procs],
                "images/s",
                baseline=rates[1] if procs > 1 else None,
                ratio=r if procs > 1 else None,
                note=note,
                details={"cli": res["cli"]},
                cpu=share.result,
            )
        )
    if torch.cuda.is_available():
        n_gpu = torch.cuda.device_count()
        for gpus in sorted({1, n_gpu}):
            args = ("--accelerator", "gpu", "--devices", str(gpus))
            if gpus > 1:
                args += ("--strategy", "ddp")
            out = settings.work / "runs" / f"scale-gpu-{gpus}"
            res = leukoscope_train(
                settings, root, backbone, size, batch, steps, out, "bundled", cache, extra_args=args
            )
            figures.append(
                Figure(
                    "scale",
                    f"GPU x{gpus} images/s",
                    res["images_per_s"],
                    "images/s",
                    details={"cli": res["cli"]},
                )
            )
    else:
        figures.append(
            Figure(
                "scale",
                "GPU images/s",
                None,
                "images/s",
                note="no GPU lent for this run (torch.cuda unavailable)",
            )
        )
    return figures, extra
