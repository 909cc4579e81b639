"""GPUs and cores for the workflow's TensorFlow jobs on one machine.

Snakemake counts a `gpu` resource but never says WHICH GPU a job may use, so two jobs admitted together
would both start on GPU 0. The Snakefile therefore (1) finds the machine's GPUs at parse time
(`gpu_pool`: `visible_gpus`, checked against what was asked for), (2) caps the `gpu` resource at
GPUs x `resources.jobs_per_gpu` slots, and (3) hands the pool to the jobs in `LEUKOSCOPE_GPU_POOL` /
`LEUKOSCOPE_GPU_SLOTS`; each TensorFlow job then claims one slot of one id with an exclusive lock file
(`claim_gpu`) and sets `CUDA_VISIBLE_DEVICES` to it before TensorFlow starts. The lock is held by the
process (an open file with `flock`), so a killed job frees its slot at once, with no stale lock to clean.
Under SLURM the scheduler sets `CUDA_VISIBLE_DEVICES` for the job, and nothing is claimed or changed.

Several jobs per GPU (`jobs_per_gpu` > 1) pay where one job at the paper's batch of 32 leaves a large GPU
half idle (two EfficientNetB2 jobs on one H200: 1.78x the throughput of one, README "Machines"). Those
jobs must not each reserve the whole GPU's memory, as TensorFlow and JAX do by default, so a job that
shares its GPU allocates on demand (`TF_FORCE_GPU_ALLOW_GROWTH`, `XLA_PYTHON_CLIENT_PREALLOCATE`).

On a CPU-only machine the training jobs share the cores (`train_threads`): each job gets its share as
Snakemake `threads`, and `LEUKOSCOPE_THREADS` makes TensorFlow keep to it instead of using every core.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from leukoscope._io import try_lock
from leukoscope.errors import ConfigError

POOL_ENV = "LEUKOSCOPE_GPU_POOL"
SLOTS_ENV = "LEUKOSCOPE_GPU_SLOTS"
THREADS_ENV = "LEUKOSCOPE_THREADS"
_HELD: list[IO[str]] = []  # claimed locks live as long as the process


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
    return _nvidia_smi_ids()


def gpu_pool(setting: str, jobs_per_gpu: int, given: int | None = None) -> tuple[list[str], int]:
    """At parse time: the GPU ids to share out and the `gpu` resource's cap (one slot per job a GPU takes).

    Asking for more than the machine has is one line at start: train.gpus naming an id the machine does
    not show, or `--resources gpu=N` above GPUs x jobs_per_gpu (the extra jobs would only wait for a
    free slot and fail after an hour). A machine that shows no GPU is not checked: a cluster's login
    node has none, and its profile sets the `gpu` resource for the scheduler.
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


def _nvidia_smi_ids() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


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


def claim_gpu(
    lock_dir: str | Path,
    pool: list[str] | None = None,
    wait_s: float = 3600.0,
    jobs_per_gpu: int | None = None,
) -> str | None:
    """Lock one free slot of a GPU of the pool and make that GPU this process's only one; None without.

    Slots are taken GPU by GPU before a second slot of any GPU (two jobs on two GPUs never share one).
    A shared GPU (jobs_per_gpu > 1) also makes the job allocate GPU memory on demand. Waits (polling)
    while every slot is held, which only happens if more GPU jobs were admitted than there are slots.
    """
    slots = max(1, int(jobs_per_gpu if jobs_per_gpu is not None else os.environ.get(SLOTS_ENV) or 1))
    if os.environ.get("SLURM_JOB_ID"):  # the scheduler decides (CUDA_VISIBLE_DEVICES from --gpus / --gres)
        if slots > 1:  # a GPU shared through gres/shard or MPS
            share_memory()
        return os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = pool if pool is not None else _pool_from_env()
    if not ids:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # CPU job: never touch a GPU another job holds
        return None
    lock_dir = Path(lock_dir)
    deadline = time.monotonic() + wait_s
    while True:
        for slot in range(slots):
            for gpu in ids:
                handle = try_lock(lock_dir / (f"gpu{gpu}.lock" if slot == 0 else f"gpu{gpu}.{slot}.lock"))
                if handle is None:
                    continue
                _HELD.append(handle)
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


def _pool_from_env() -> list[str]:
    return [part for part in os.environ.get(POOL_ENV, "").split(",") if part]


def share_pool(ids: list[str], jobs_per_gpu: int = 1) -> None:
    """The Snakefile hands its GPU ids to the jobs it starts (they inherit the environment)."""
    os.environ[POOL_ENV] = ",".join(ids)
    os.environ[SLOTS_ENV] = str(max(1, int(jobs_per_gpu)))


def shared_pool() -> list[str]:
    """In a job process that parses the Snakefile again (cluster jobs): the ids the main process found."""
    return _pool_from_env()


@contextlib.contextmanager
def holding(lock_dir: str | Path, pool: list[str], jobs_per_gpu: int = 1) -> Iterator[str | None]:
    """claim_gpu for a block (tests): the lock is released at the end."""
    gpu = claim_gpu(lock_dir, pool, jobs_per_gpu=jobs_per_gpu)
    try:
        yield gpu
    finally:
        while _HELD:
            _HELD.pop().close()


def set_threads(threads: int) -> None:
    """Before TensorFlow starts: its thread pools follow the job's `threads` (see train.hardware)."""
    os.environ[THREADS_ENV] = str(max(1, int(threads)))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, int(threads))))
