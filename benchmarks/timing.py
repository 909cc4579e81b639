"""Instruments the benchmark subprocesses share: a per-step timer for `model.fit`, memory from /proc.

Imported by the job, baseline and GPU scripts (which import Keras anyway), never by `run.py` itself, so
the parent process that samples their memory stays small.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import time
from pathlib import Path
from typing import Any

import keras


def status_gib(field: str = "VmHWM") -> float:
    """A memory line of this process's /proc/self/status in GiB (VmHWM: the resident high-water mark)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 2**20
    return 0.0


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training step and epoch as `fit` runs them, and of the train function inside.

    A step's period runs from one `on_train_batch_begin` to the next (the train function, the wait for the
    batch inside it, every other callback and Keras' loop); the last step of an epoch ends at its
    `on_train_batch_end`. The compiled train function itself is timed by wrapping `model.train_function`
    when training begins (`fit` has made it by then and looks it up at every step), so period - function
    is what `fit` adds around the bare compiled step. Added last, its `on_epoch_end` comes after the other
    callbacks' (checkpoints): an epoch's time is training + validation + everything done at its end.
    """

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[dict[str, Any]] = []
        self._begins: list[float] = []
        self._fn: list[float] = []
        self._last_end = 0.0
        self._epoch_start = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        inner = self.model.train_function
        if inner is None or getattr(inner, "_bench_timed", False):
            return

        def timed(iterator: Any) -> Any:
            t = time.perf_counter()
            try:
                return inner(iterator)
            finally:
                self._fn.append(time.perf_counter() - t)

        timed._bench_timed = True  # type: ignore[attr-defined]
        timed.__wrapped_inner__ = inner  # type: ignore[attr-defined]
        self.model.train_function = timed

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        timed = self.model.train_function
        inner = getattr(timed, "__wrapped_inner__", None)
        if inner is not None:
            self.model.train_function = inner

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_start = time.perf_counter()
        self._begins, self._fn = [], []

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._begins.append(time.perf_counter())

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._last_end = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        end = time.perf_counter()
        marks = [*self._begins, self._last_end]
        steps = [b - a for a, b in itertools.pairwise(marks)]
        self.epochs.append(
            {
                "epoch": int(epoch),
                "steps": len(steps),
                "step_s": steps,
                "function_s": list(self._fn),  # the compiled train function, step by step
                "train_s": self._last_end - self._epoch_start,
                "epoch_s": end - self._epoch_start,  # + validation and the epoch-end callbacks
                "rss_hwm_gib": status_gib("VmHWM"),
            }
        )


def periods(epoch: dict[str, Any]) -> list[tuple[float, float]]:
    """(step period, train function) of every step but the epoch's last (whose period is cut short)."""
    pairs = list(zip(epoch["step_s"], epoch["function_s"], strict=False))
    return pairs[:-1] if len(pairs) > 1 else pairs


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def steady(epoch: dict[str, Any]) -> float:
    """Median step time of an epoch (robust to one slow step on a shared machine)."""
    return median(list(epoch["step_s"]))
