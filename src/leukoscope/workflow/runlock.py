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

import logging
from pathlib import Path
from typing import IO

from leukoscope._io import try_lock

log = logging.getLogger(__name__)
LOCK_NAME = "leukoscope-run.lock"
_held: list[IO[str]] = []  # handles kept open (and so locked) until the process exits


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
