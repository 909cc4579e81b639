"""What the Snakefile does to the machine while it is parsed, besides reading the config: all of it here.

1. Jobs import this clone's engine: `src/` goes first on PYTHONPATH (a conda env from `envs/` holds only
   the dependencies; see envs/README.md).
2. Stale lock release: after `kill -9` of a run, Snakemake's lock files stay and would refuse the same
   command again; the main process holds an flock on `.snakemake/leukoscope-run.lock` for its life (the
   kernel drops it however the process dies), so lock files found while holding it are stale and go
   (`release_stale_locks`); when another live run holds it, nothing is touched.
3. The GPU pool: the `gpu` resource is capped at GPUs x `resources.jobs_per_gpu` slots (more than exists
   is one line), and the ids are handed to the jobs, which lock one slot each (`leukoscope.workflow.gpus`).

Only the main process does 2 and 3 (a cluster job parses the Snakefile again; its GPU is SLURM's), and
`snakemake --lint` does none.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from leukoscope._io import try_lock
from leukoscope.errors import LeukoScopeError
from leukoscope.workflow import gpus

log = logging.getLogger(__name__)
LOCK_NAME = "leukoscope-run.lock"
GPU_LOCKS = "results/.state/gpu-locks"  # one lock file per GPU slot (`gpus.claim_gpu`)
_held: list[IO[str]] = []  # handles kept open (and so locked) until the process exits


@dataclass(frozen=True)
class Machine:
    gpus: list[str]  # GPU ids shared out (empty: CPU only, or a cluster's login node)
    gpu_per_job: int  # the `gpu` resource of a training / predict job
    threads: int  # threads of a training / predict job


def prepare(workflow: Any, cfg: Any) -> Machine:
    """Steps 1-3 of the module docstring; the job sizes the rules use. A problem is one line."""
    from snakemake.exceptions import WorkflowError

    try:
        return _prepare(
            workflow, cfg, main=workflow.is_main_process and getattr(workflow, "check_envvars", True)
        )
    except LeukoScopeError as exc:
        raise WorkflowError(exc.one_line()) from None


def _prepare(workflow: Any, cfg: Any, *, main: bool) -> Machine:
    use_source_tree(workflow.basedir)
    r = cfg.resources
    if main:
        release_stale_locks()
        given = workflow.global_resources.get("gpu")
        ids, slots = gpus.gpu_pool(r.gpus, r.jobs_per_gpu, getattr(given, "value", given))
        if ids and given is None:  # a cluster's login node has no GPU: its jobs ask SLURM for theirs
            workflow.register_resource("gpu", slots)
    else:
        ids = gpus.shared_pool()
    gpus.share_pool(ids, r.jobs_per_gpu)
    cores = workflow.global_resources["_cores"].value
    threads = gpus.train_threads(cores, ids, r.threads, r.cpu_jobs, r.jobs_per_gpu)
    return Machine(ids, 1 if ids else 0, threads)


def use_source_tree(basedir: str | Path) -> None:
    src = Path(basedir) / "src"
    if (src / "leukoscope").is_dir():
        rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(src)]
        os.environ["PYTHONPATH"] = os.pathsep.join([str(src), *rest])


def release_stale_locks(workdir: str | Path = ".") -> list[Path]:
    """Hold this folder's run lock; remove Snakemake's stale lock files. The files removed."""
    meta = Path(workdir) / ".snakemake"
    handle = try_lock(meta / LOCK_NAME)
    if handle is None:  # another live run holds it: its locks are real
        return []
    _held.append(handle)
    removed = sorted((meta / "locks").glob("*.lock"))
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        log.warning("removed %d stale Snakemake lock file(s) left by a killed run", len(removed))
    return removed
