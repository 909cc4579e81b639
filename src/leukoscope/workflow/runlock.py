"""Let `snakemake` be run again after it was killed with SIGKILL (or the node lost power).

Snakemake marks a running workflow with lock files in `.snakemake/locks/` and removes them on exit; a
SIGKILL leaves them, and the next run refuses to start until `snakemake --unlock`. The Snakefile's main
process calls `release_stale_locks()` while it is parsed, before Snakemake checks its locks: it takes an
exclusive `flock` on `.snakemake/leukoscope-run.lock` and holds it for the life of the process (the kernel
drops it when the process dies, however it dies). Holding it proves no other LeukoScope run is alive in
this folder, so any Snakemake lock files left are stale and are removed; when another run holds it,
nothing is touched and Snakemake's own lock check refuses this run as usual.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
LOCK_NAME = "leukoscope-run.lock"
_held: list[int] = []  # file descriptors kept open (and so locked) until the process exits


def release_stale_locks(workdir: str | Path = ".") -> list[Path]:
    """Hold this folder's run lock; remove Snakemake's stale lock files. The files removed."""
    meta = Path(workdir) / ".snakemake"
    meta.mkdir(exist_ok=True)
    fd = os.open(meta / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # another live run holds it: its locks are real
        os.close(fd)
        return []
    _held.append(fd)
    removed = sorted((meta / "locks").glob("*.lock"))
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        log.warning("removed %d stale Snakemake lock file(s) left by a killed run", len(removed))
    return removed
