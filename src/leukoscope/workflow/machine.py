"""Everything the workflow does to the machine, in one place: run locks, the GPU pool, threads.

At parse time (`prepare`, main process only; a cluster job parses again and `snakemake --lint` does none):
1. Stale lock release: after `kill -9` of a run, Snakemake's lock files stay and would refuse the same
   command again; the main process holds an flock on `.snakemake/leukoscope-run.lock` for its life (the
   kernel drops it however the process dies), so lock files found while holding it are stale and go.
2. The GPU pool: Snakemake counts a `gpu` resource but never says WHICH GPU a job may use, so the `gpu`
   resource is capped at GPUs x `resources.jobs_per_gpu` slots (asking for more is one line) and the ids
   go to the jobs in `LEUKOSCOPE_GPU_POOL` / `LEUKOSCOPE_GPU_SLOTS`.
Every job's sources: `src/` goes first on PYTHONPATH (a conda env from `envs/` holds only dependencies).

In a TensorFlow job, before TensorFlow starts (`leukoscope.workflow.script.run(..., device=True)`): its
threads (`set_threads`; on CPU-only machines the jobs share the cores, `train_threads`), then one slot
of one GPU, taken with an exclusive lock file held by the process, so a killed job frees it at once
(`claim_gpu`). Jobs sharing a GPU (two EfficientNetB2 jobs on one H200: 1.78x the throughput of one,
README "Machines") allocate its memory on demand. Under SLURM the scheduler sets CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from leukoscope._io import try_lock
from leukoscope.errors import ConfigError, LeukoScopeError

log = logging.getLogger(__name__)
LOCK_NAME = "leukoscope-run.lock"
GPU_LOCKS = "results/.state/gpu-locks"  # one lock file per GPU slot
POOL_ENV, SLOTS_ENV, THREADS_ENV = "LEUKOSCOPE_GPU_POOL", "LEUKOSCOPE_GPU_SLOTS", "LEUKOSCOPE_THREADS"
_HELD: list[IO[str]] = []  # the run lock, held until the process exits
_SLOTS: list[IO[str]] = []  # the GPU slot this job holds, until it exits


@dataclass(frozen=True)
class Machine:
    gpu_per_job: int  # the `gpu` resource of a training / predict job (0: CPU only, or a login node)
    threads: int  # threads of a training / predict job


def prepare(workflow: Any, cfg: Any) -> Machine:
    """Parse time: steps 1-2 of the module docstring; the job sizes the rules use. A problem is one line."""
    from snakemake.exceptions import WorkflowError

    main = main_process(workflow)
    src = Path(workflow.basedir) / "src"
    if (src / "leukoscope").is_dir():
        rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(src)]
        os.environ["PYTHONPATH"] = os.pathsep.join([str(src), *rest])
    r = cfg.resources
    try:
        if main:
            release_stale_locks()
            given = workflow.global_resources.get("gpu")
            ids, slots = gpu_pool(r.gpus, r.jobs_per_gpu, getattr(given, "value", given))
            if ids and given is None:  # a cluster's login node has no GPU: its jobs ask SLURM for theirs
                workflow.register_resource("gpu", slots)
        else:
            ids = [part for part in os.environ.get(POOL_ENV, "").split(",") if part]
    except LeukoScopeError as exc:
        raise WorkflowError(exc.one_line()) from None
    os.environ[POOL_ENV], os.environ[SLOTS_ENV] = ",".join(ids), str(r.jobs_per_gpu)
    threads = train_threads(
        workflow.global_resources["_cores"].value, ids, r.threads, r.cpu_jobs, r.jobs_per_gpu
    )
    return Machine(1 if ids else 0, threads)


def main_process(workflow: Any) -> bool:
    """The run's own Snakemake process: not a cluster job parsing the Snakefile again, nor `snakemake
    --lint` (which sets no check_envvars); only it checks the data and touches the machine."""
    return bool(workflow.is_main_process and getattr(workflow, "check_envvars", True))


def release_stale_locks(workdir: str | Path = ".") -> list[Path]:
    """Hold this folder's run lock; remove Snakemake's stale lock files. The files removed."""
    meta = Path(workdir) / ".snakemake"
    handle = try_lock(meta / LOCK_NAME)
    if handle is None:  # another live run holds it: its locks are real
        return []
    _HELD.append(handle)
    removed = sorted((meta / "locks").glob("*.lock"))
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        log.warning("removed %d stale Snakemake lock file(s) left by a killed run", len(removed))
    return removed


def visible_gpus(setting: str = "auto") -> list[str]:
    """GPU ids this machine offers: `none`, ids ("0,1"), or auto (CUDA_VISIBLE_DEVICES, else nvidia-smi)."""
    text = str(setting).strip().lower()
    if text in ("none", "cpu", "0 gpus", ""):
        return []
    if text != "auto":
        ids = [part.strip() for part in text.split(",") if part.strip()]
        if not ids or not all(i.isdigit() for i in ids):
            raise ConfigError(f"resources.gpus is {setting!r}", hint="use auto, none, or GPU ids like 0,1")
        return ids
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [part.strip() for part in env.split(",") if part.strip() and part.strip() != "-1"]
    exe = shutil.which("nvidia-smi")
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20).stdout if exe else ""
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def gpu_pool(setting: str, jobs_per_gpu: int, given: int | None = None) -> tuple[list[str], int]:
    """The GPU ids to share out and the `gpu` resource's cap (one slot per job a GPU takes).

    Asking for more than the machine has is one line at start: an id it does not show, or `--resources
    gpu=N` above GPUs x jobs_per_gpu (the extra jobs would only wait for a slot and fail after an hour).
    A machine that shows no GPU is not checked: a cluster's login node has none.
    """
    ids = visible_gpus(setting)
    found = visible_gpus("auto") if ids and str(setting).strip().lower() != "auto" else ids
    missing = [i for i in ids if found and i not in found]
    if missing:
        raise ConfigError(
            f"resources.gpus is {setting!r} but this machine shows GPU(s) {','.join(found)} "
            "(CUDA_VISIBLE_DEVICES, else nvidia-smi)",
            hint=f"drop {','.join(missing)}, or use auto",
        )
    slots = len(ids) * max(1, int(jobs_per_gpu))
    if ids and given is not None and int(given) > slots:
        raise ConfigError(
            f"--resources gpu={given} asks for more GPU jobs at once than this machine runs: "
            f"{len(ids)} GPU(s) x resources.jobs_per_gpu {jobs_per_gpu} = {slots}",
            hint=f"use gpu={slots} or less, or raise resources.jobs_per_gpu to share each GPU",
        )
    return ids, slots


def train_threads(
    cores: int | None, gpus: list[str], setting: int | None, cpu_jobs: int, jobs_per_gpu: int = 1
) -> int:
    """Threads per training job: the setting; with GPUs a share for the input pipeline; else a share."""
    if setting:
        return int(setting)
    cores = max(1, int(cores or os.cpu_count() or 1))
    if gpus:
        return max(1, min(8, cores // (len(gpus) * max(1, int(jobs_per_gpu)))))
    return max(1, cores // max(1, cpu_jobs))


def set_threads(threads: int) -> None:
    """Before TensorFlow starts: its thread pools follow the job's `threads` (see train.hardware)."""
    os.environ[THREADS_ENV] = str(max(1, int(threads)))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, int(threads))))


def claim_gpu(
    lock_dir: str | Path,
    pool: list[str] | None = None,
    wait_s: float = 3600.0,
    jobs_per_gpu: int | None = None,
) -> str | None:
    """Lock one free slot of a GPU of the pool and make that GPU this process's only one; None without.

    Slots are taken GPU by GPU before a second slot of any GPU (two jobs on two GPUs never share one).
    Waits (polling) while every slot is held, which only happens if more GPU jobs were admitted than slots.
    """
    slots = max(1, int(jobs_per_gpu if jobs_per_gpu is not None else os.environ.get(SLOTS_ENV) or 1))
    if os.environ.get("SLURM_JOB_ID"):  # the scheduler decides (CUDA_VISIBLE_DEVICES from --gpus / --gres)
        if slots > 1:  # a GPU shared through gres/shard or MPS
            share_memory()
        return os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = pool if pool is not None else [p for p in os.environ.get(POOL_ENV, "").split(",") if p]
    if not ids:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # CPU job: never touch a GPU another job holds
        return None
    deadline = time.monotonic() + wait_s
    while True:
        for slot in range(slots):
            for gpu in ids:
                handle = try_lock(
                    Path(lock_dir) / (f"gpu{gpu}.lock" if slot == 0 else f"gpu{gpu}.{slot}.lock")
                )
                if handle is not None:
                    _SLOTS.append(handle)
                    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
                    if slots > 1:
                        share_memory()
                    return gpu
        if time.monotonic() > deadline:
            raise ConfigError(
                f"no free GPU slot among {','.join(ids)} ({slots} per GPU) after {wait_s:.0f} s",
                path=lock_dir,
            )
        time.sleep(2.0)


def share_memory() -> None:
    """Before TensorFlow / JAX start: take GPU memory as needed, not (nearly) all of it at once."""
    os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"


def release_gpus() -> None:
    """Give back every GPU slot this process holds (tests: a claim for one block)."""
    while _SLOTS:
        _SLOTS.pop().close()
