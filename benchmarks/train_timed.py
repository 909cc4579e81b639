"""`leukoscope train ARGS` with a per-step timer: `python benchmarks/train_timed.py TIMING.json ARGS...`.

The real CLI runs unchanged; a Lightning callback is added to the Trainer that `fit` builds and rank 0
writes each epoch's per-step data wait and compute times to TIMING.json. Under DDP, Lightning starts the
other ranks by running this same command line, so every rank is timed the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lightning.pytorch as pl  # noqa: E402


class StepTimer(pl.Callback):
    """Per-step data wait (end of previous step or epoch start -> batch in hand) and compute.

    With LEUKOSCOPE_BENCH_PROFILE=path, the last `LEUKOSCOPE_BENCH_PROFILE_STEPS` steps (default 2) of the
    last epoch run under torch.profiler (data loading between them included); they are left out of the
    timing, and the breakdown is written to path.
    """

    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []
        self._mark = 0.0
        self._got = 0.0
        self.profile_path = os.environ.get("LEUKOSCOPE_BENCH_PROFILE")
        self.profile_steps = int(os.environ.get("LEUKOSCOPE_BENCH_PROFILE_STEPS", "2"))
        self._prof: Any = None
        self._profiling = False

    def _should_profile(self, trainer: pl.Trainer, batch_idx: int) -> bool:
        if not self.profile_path or not trainer.is_global_zero:
            return False
        last_epoch = trainer.current_epoch == trainer.max_epochs - 1
        steps = int(trainer.num_training_batches)
        return last_epoch and steps > self.profile_steps + 1 and batch_idx >= steps - self.profile_steps

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import torch

        self.epochs.append(
            {
                "wait": [],
                "compute": [],
                "images": [],
                "world_size": trainer.world_size,
                "threads": torch.get_num_threads(),
                "precision": str(trainer.precision),
                "maxrss_gib_at_start": _maxrss_gib(),
            }
        )
        self._mark = time.perf_counter()

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._should_profile(trainer, batch_idx):
            if self._prof is None:
                from torch.profiler import ProfilerActivity, profile

                self._prof = profile(activities=[ProfilerActivity.CPU])
                self._prof.__enter__()
            self._profiling = True
            return
        self._got = time.perf_counter()
        self.epochs[-1]["wait"].append(self._got - self._mark)
        self.epochs[-1]["images"].append(len(batch[0]) * trainer.world_size)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._profiling:
            self._mark = time.perf_counter()
            self.epochs[-1]["compute"].append(self._mark - self._got)
            self.epochs[-1]["maxrss_gib_end"] = _maxrss_gib()
            if batch_idx == 0:
                self.epochs[-1]["maxrss_gib_after_first_step"] = _maxrss_gib()
        elif batch_idx >= int(trainer.num_training_batches) - 1:  # stop before validation starts
            from benchmarks.profiling import breakdown

            self._prof.__exit__(None, None, None)
            Path(str(self.profile_path)).write_text(
                json.dumps(breakdown(self._prof.key_averages()), indent=1)
            )
            self._prof, self._profiling = None, False


def _maxrss_gib() -> float:
    """This process's peak resident memory so far: VmHWM (ru_maxrss would include the parent's peak)."""
    import resource

    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def summarize(epoch: dict[str, Any]) -> dict[str, Any]:
    total = sum(epoch["wait"]) + sum(epoch["compute"])
    steps = len(epoch["wait"])
    return {
        "images_per_s": sum(epoch["images"]) / total if total else None,
        "data_wait_fraction": sum(epoch["wait"]) / total if total else None,
        "steps": steps,
        "step_s": total / steps if steps else None,
        "first_step_wait_s": epoch["wait"][0] if steps else None,
        "world_size": epoch["world_size"],
        "threads_per_process": epoch.get("threads"),
        "precision": epoch.get("precision"),
        "maxrss_gib_at_start": epoch.get("maxrss_gib_at_start"),
        "maxrss_gib_after_first_step": epoch.get("maxrss_gib_after_first_step"),
        "maxrss_gib_end_of_training": epoch.get("maxrss_gib_end"),
    }


def main() -> None:
    timing_path = Path(sys.argv[1])
    args = sys.argv[2:]
    from leukoscope.train import fit as fit_module

    timer = StepTimer()
    original = fit_module.build_trainer

    def build(cfg: Any, run_dir: Path) -> pl.Trainer:
        trainer = original(cfg, run_dir)
        trainer.callbacks.append(timer)
        return trainer

    fit_module.build_trainer = build  # fit() takes no extra callbacks
    from leukoscope.cli.main import app

    # sys.argv stays as it is: Lightning's DDP launcher starts the other ranks by re-running it
    t0 = time.perf_counter()
    try:
        app(args=["train", *args], standalone_mode=False)
    finally:
        if fit_module.is_global_zero() and timer.epochs:
            doc = {"wall_s": time.perf_counter() - t0, "epochs": [summarize(e) for e in timer.epochs]}
            doc["raw"] = timer.epochs
            timing_path.parent.mkdir(parents=True, exist_ok=True)
            timing_path.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
