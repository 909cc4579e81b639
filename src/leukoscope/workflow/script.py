"""The one template of `workflow/scripts/*.py` (e.g. `crop.py`): log to `snakemake.log`, fail in one line.

A script is a one-line docstring naming its rule and a `main(smk)` that imports one package function and
maps the rule's files and params onto one call of it, the same the CLI makes; then `run(snakemake, main)`.
With `device=True` (TensorFlow jobs) the job's threads and its GPU slot (`leukoscope.workflow.machine`)
are settled before `main` imports TensorFlow; `smk.gpu` is the GPU id it got (None on a CPU).

stderr and the `leukoscope` loggers go to the rule's log file; a `LeukoScopeError` (bad data, a bad
setting) is written there and to the terminal as one line, and the job exits 1, so Snakemake reports
the failed rule with its log and deletes the job's incomplete outputs.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from leukoscope.errors import LeukoScopeError

log = logging.getLogger("leukoscope.workflow")


def run(smk: Any, main: Callable[[Any], None], *, device: bool = False) -> None:
    log_files = list(getattr(smk, "log", []) or [])
    terminal: Any = sys.stderr
    if log_files:
        terminal = os.fdopen(os.dup(2), "w", buffering=1)  # the terminal, before fd 2 becomes the log
        Path(log_files[0]).parent.mkdir(parents=True, exist_ok=True)
        handle = open(log_files[0], "w", encoding="utf-8", buffering=1)  # noqa: SIM115 (the job's stderr)
        for fd in (1, 2):  # Keras' progress (stdout) and TensorFlow's C++ logs too
            os.dup2(handle.fileno(), fd)
        sys.stdout = sys.stderr = handle
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        force=True,
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    rule = getattr(smk, "rule", "job")
    try:
        if device:
            _settle_device(smk)
        main(smk)
    except LeukoScopeError as exc:
        message = f"{rule}: {exc.one_line()}"
        log.error(message)
        print(f"error: {message}", file=terminal, flush=True)
        sys.exit(1)
    log.info("%s finished in %.1f s", rule, time.perf_counter() - start)


def _settle_device(smk: Any) -> None:
    """Before TensorFlow starts: the job's threads, then one slot of a GPU (`smk.gpu`; None on a CPU)."""
    from leukoscope.workflow import machine

    machine.set_threads(smk.threads)
    smk.gpu = machine.claim_gpu(smk.params.gpu_locks)
