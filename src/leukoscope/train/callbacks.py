"""What Keras lacks for this job: the challenge's weighted F1 as a metric, and exact resumes.

- `WeightedF1`: support-weighted F1 over all classes from logits (scikit-learn's `f1_score(average=
  "weighted")`); Keras' F1Score scores the columns of a one-hot output, so with the paper's single
  sigmoid output it would report the positive class only.
- `EpochCheckpoint`: after every epoch, atomically, the full model with its optimizer state
  (`last.keras`), the best weights so far by validation weighted F1 (`best.weights.h5`) and a small
  `state.json` (next epoch, best score and epoch, early-stopping patience used). Keras' BackupAndRestore
  was measured here restarting the interrupted epoch with a wrong step count; restarting at an epoch
  boundary with the input stream of `train.tfdata` reproduces an uninterrupted run bit for bit.
- `Throughput`: training images per second, per epoch, into the logs; and where a job's time went:
  its first step (graph tracing / XLA compile: minutes for DenseNet201 on a GPU) apart from its steady
  images per second, for `metrics.json` and the report's timing table.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
from keras import ops

from leukoscope._io import atomic_path, write_json

log = logging.getLogger(__name__)
MONITOR = "val_weighted_f1"
LAST = "last.keras"
BEST = "best.weights.h5"
STATE = "state.json"


@keras.saving.register_keras_serializable(package="leukoscope")
class WeightedF1(keras.metrics.Metric):
    """Weighted F1 from logits: (B, 1) two-class logits (logit > 0 is the positive class) or (B, N)."""

    def __init__(self, num_classes: int = 2, name: str = "weighted_f1", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.confusion = self.add_variable(
            shape=(self.num_classes, self.num_classes), initializer="zeros", name="confusion"
        )

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = ops.cast(y_pred, "float32")
        if y_pred.shape[-1] == 1:
            predicted = ops.cast(ops.reshape(y_pred, (-1,)) > 0.0, "int32")
        else:
            predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        truth = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        pairs = (
            ops.one_hot(truth, self.num_classes)[:, :, None]
            * ops.one_hot(predicted, self.num_classes)[:, None, :]
        )
        self.confusion.assign_add(ops.sum(pairs, axis=0))

    def result(self) -> Any:
        cm = self.confusion
        tp = ops.diagonal(cm)
        support = ops.sum(cm, axis=1)
        predicted = ops.sum(cm, axis=0)
        precision = ops.divide_no_nan(tp, predicted)
        recall = ops.divide_no_nan(tp, support)
        f1 = ops.divide_no_nan(2.0 * precision * recall, precision + recall)
        return ops.divide_no_nan(ops.sum(f1 * support), ops.sum(support))

    def reset_state(self) -> None:
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes}


@dataclass
class TrainState:
    """What a restarted job needs besides the model: where to go on, and the best epoch so far."""

    config_hash: str
    next_epoch: int = 0
    best_score: float | None = None
    best_epoch: int | None = None  # 0-based
    wait: int = 0  # epochs since the best one (early stopping)
    stopped_early: bool = False

    @classmethod
    def load(cls, directory: Path) -> TrainState | None:
        path = directory / STATE
        if not path.is_file() or not (directory / LAST).is_file():
            return None
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            return None

    def save(self, directory: Path) -> None:
        write_json(directory / STATE, asdict(self))


class EpochCheckpoint(keras.callbacks.Callback):
    """Best-by-validation weights, early stopping and the resume state, written at each epoch's end.

    The state file is written last: a kill at any moment leaves either the previous epoch's complete
    state or this one's.
    """

    def __init__(self, directory: Path, state: TrainState, patience: int | None) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.state = state
        self.patience = patience

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        score = logs.get(MONITOR)
        state = self.state
        if score is not None and (state.best_score is None or float(score) > state.best_score):
            state.best_score, state.best_epoch, state.wait = float(score), epoch, 0
            with atomic_path(self.directory / BEST, keep_suffix=True) as tmp:
                self.model.save_weights(str(tmp))
        else:
            state.wait += 1
        if self.patience and state.wait >= self.patience:
            state.stopped_early = True
            self.model.stop_training = True
            log.info("early stopping: no better validation weighted F1 for %d epochs", state.wait)
        with atomic_path(self.directory / LAST, keep_suffix=True) as tmp:
            self.model.save(str(tmp))
        state.next_epoch = epoch + 1
        state.save(self.directory)


class Throughput(keras.callbacks.Callback):
    """Training images per second over each epoch (the validation pass excluded), and the job's timing.

    The first step of a `fit` call traces (and with XLA compiles) the train function, so it is timed on
    its own (`first_step_s`, its data wait included) and left out of `steady_images_per_s`, which counts
    every later training step of the call (validation passes and epoch-end callbacks excluded).
    """

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self._start = 0.0
        self._steps = 0
        self._train_seconds = 0.0
        self._fit_start = 0.0
        self._batch_start = 0.0
        self._steady_from = 0.0
        self._steady_steps = 0
        self._steady_span = 0.0
        self.first_step_s: float | None = None
        self.steady_steps = 0
        self.steady_seconds = 0.0
        self.epochs_timed = 0
        self.fit_s = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._fit_start = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start, self._steps, self._train_seconds = time.perf_counter(), 0, 0.0
        self._steady_from, self._steady_steps, self._steady_span = self._start, 0, 0.0

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.perf_counter()
        self._steps += 1
        self._train_seconds = now - self._start
        if self.first_step_s is None:
            self.first_step_s = now - self._batch_start
            self._steady_from = now  # steady time starts after the first step (its data wait included)
            log.info(
                "first training step (tracing / compiling the train function): %.1f s", self.first_step_s
            )
        else:
            self._steady_steps += 1
            self._steady_span = now - self._steady_from  # input waits between steps included

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epochs_timed += 1
        self.steady_steps += self._steady_steps
        self.steady_seconds += self._steady_span
        if logs is not None and self._train_seconds > 0:
            logs["images_per_s"] = self._steps * self.batch_size / self._train_seconds

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.fit_s = time.perf_counter() - self._fit_start
        timing = self.timing()
        if timing is not None:
            log.info(
                "timing: first step %.1f s, then %s images/s over %d epoch(s); fit %.0f s",
                timing["first_step_s"],
                "n/a" if timing["steady_images_per_s"] is None else f"{timing['steady_images_per_s']:.1f}",
                timing["epochs_timed"],
                timing["fit_s"],
            )

    def timing(self) -> dict[str, Any] | None:
        """For metrics.json: None when this process trained no step (a finished state was resumed)."""
        if self.first_step_s is None:
            return None
        steady = (
            self.steady_steps * self.batch_size / self.steady_seconds if self.steady_seconds > 0 else None
        )
        return {
            "first_step_s": round(self.first_step_s, 3),
            "steady_images_per_s": None if steady is None else round(steady, 2),
            "steady_steps": self.steady_steps,
            "epochs_timed": self.epochs_timed,
            "fit_s": round(self.fit_s, 2),
        }
