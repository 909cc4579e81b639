"""One Keras training job: devices and precision, a new or restored compiled model, datasets, callbacks.

`TrainingJob.run()` is `model.fit` with Keras callbacks (CSVLogger, TensorBoard, ReduceLROnPlateau) and
LeukoScope's `EpochCheckpoint`; a state folder with a complete epoch is resumed from, and the job logs it.
The optimizer, its schedule, the epoch length and BatchNorm's statistics follow the resolved recipe
(`train.recipe`: paper or scratch).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from leukoscope.config import RunConfig
from leukoscope.errors import ConfigError
from leukoscope.train.callbacks import (
    BEST,
    LAST,
    MONITOR,
    EpochCheckpoint,
    Throughput,
    TrainState,
    WeightedF1,
)
from leukoscope.train.inputs import HISTORY, FitInputs, class_counts_param, class_weights, in_target_order
from leukoscope.train.recipe import Recipe, resolve

log = logging.getLogger("leukoscope.train")
REFRESH_BATCH = 64  # images per forward pass of the BatchNorm refresh (statistics, no gradients)


class TrainingJob:
    def __init__(self, cfg: RunConfig, inputs: FitInputs, state_dir: Path, key: str) -> None:
        from leukoscope.models.backbones import get_backbone
        from leukoscope.train import hardware

        self.cfg, self.inputs, self.state_dir, self.key = cfg, inputs, Path(state_dir), key
        self.backbone = get_backbone(cfg.model.backbone)
        hardware.threads_from_environment()  # first: thread pools cannot change once devices exist
        self.placement = hardware.resolve_devices(cfg.train.devices)  # before TensorFlow picks devices
        self.policy = hardware.resolve_precision(
            cfg.train.precision, on_gpu="GPU" in self.placement.description
        )
        self.jit = hardware.resolve_jit(cfg.train.jit_compile)
        self.recipe: Recipe = resolve(cfg)
        counts = inputs.train.class_counts(len(inputs.class_names))
        self.loss_params = class_counts_param(cfg, counts)  # class order: what the card records
        self.positive = inputs.positive_index
        self.counts = in_target_order(counts, inputs.binary, self.positive)  # the targets' order

    # -- model ---------------------------------------------------------------------------------------

    def spec(self) -> Any:
        from leukoscope.models.factory import ClassifierSpec

        pre = self.inputs.preprocess
        return ClassifierSpec(
            backbone=self.backbone.name,
            num_classes=len(self.inputs.class_names),
            image_size=self.inputs.train.image_size,
            normalize=pre.normalize,
            mean=pre.mean,
            std=pre.std,
            head_hidden=self.cfg.model.head_hidden,
            dropout=self.cfg.model.dropout,
        )

    def optimizer(self, steps: int) -> Any:
        import keras

        o, epochs = self.recipe.optim, self.cfg.train.epochs
        lr: Any = o.lr
        if o.scheduler == "cosine":
            total = max(1, epochs * steps)
            warmup = round(self.recipe.warmup_fraction * total)
            if warmup:
                lr = keras.optimizers.schedules.CosineDecay(
                    0.0, decay_steps=max(1, total - warmup), warmup_target=o.lr, warmup_steps=warmup
                )
            else:
                lr = keras.optimizers.schedules.CosineDecay(o.lr, decay_steps=total)
        if o.name == "adam":
            return keras.optimizers.Adam(lr, beta_1=o.betas[0], beta_2=o.betas[1])
        if o.name == "adamw":
            return keras.optimizers.AdamW(
                lr, beta_1=o.betas[0], beta_2=o.betas[1], weight_decay=o.weight_decay
            )
        if o.name == "sgd":
            return keras.optimizers.SGD(lr, momentum=o.momentum, weight_decay=o.weight_decay or None)
        raise ConfigError(f"optim.name is {o.name!r}", hint="choose one of: adam, adamw, sgd")

    def target_loss_params(self) -> dict[str, Any]:
        """The loss parameters with class counts in target order (two classes: negative, positive)."""
        params = dict(self.loss_params)
        if "class_counts" in params:
            counts = params["class_counts"]
            params["class_counts"] = in_target_order(counts, self.inputs.binary, self.positive)
        return params

    def metrics(self) -> list[Any]:
        import keras

        classes = len(self.inputs.class_names)
        f1 = WeightedF1(classes, name="weighted_f1")
        if classes == 2:
            return [
                keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0),
                f1,
                keras.metrics.AUC(name="roc_auc", from_logits=True),
            ]
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), f1]

    def compiled_model(self, steps: int, state: TrainState | None) -> Any:
        """A new model (ImageNet or other start weights), or the state's `last.keras` with its optimizer."""
        import keras

        import leukoscope.models.layers  # noqa: F401  (registered layers of last.keras)
        from leukoscope.losses import get_loss
        from leukoscope.models.factory import build_classifier

        with self.placement.strategy.scope():
            if state is not None:
                model = keras.saving.load_model(str(self.state_dir / LAST), safe_mode=True)
                optimizer = model.optimizer
            else:
                model, _ = build_classifier(self.spec(), self.cfg.model.weights)
                optimizer = self.optimizer(steps)
            model.compile(
                optimizer=optimizer,
                loss=get_loss(self.cfg.loss.name, **self.target_loss_params()),
                metrics=self.metrics(),
                jit_compile=self.jit,
                run_eagerly=self.cfg.train.run_eagerly,
            )
        return model

    # -- the run ---------------------------------------------------------------------------------------

    def restored_state(self) -> TrainState | None:
        state = TrainState.load(self.state_dir)
        if state is None:
            return None
        if state.config_hash != self.key:  # cannot happen with the keyed folder name, unless edited
            log.warning("ignoring resume state %s: made for another configuration", self.state_dir)
            return None
        return state

    def run(self) -> tuple[pd.DataFrame, TrainState]:
        import keras

        from leukoscope.preprocess.augment import RandomAugment
        from leukoscope.train.tfdata import evaluation_dataset, steps_per_epoch, training_dataset

        cfg, t = self.cfg, self.cfg.train
        keras.utils.set_random_seed(t.seed)
        if t.deterministic:
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        keras.mixed_precision.set_global_policy(self.policy)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = self.restored_state()
        start = state.next_epoch if state is not None else 0
        if state is not None and (state.stopped_early or start >= t.epochs):
            log.info("resume state %s is complete (epoch %d)", self.state_dir, start)
            return self.history(), state
        augment = RandomAugment.from_config(self.recipe.augment, cfg.preprocess.clahe_grid)
        natural = steps_per_epoch(len(self.inputs.train), t.batch_size)
        train_ds, steps = training_dataset(
            self.inputs.train, batch_size=t.batch_size, seed=t.seed, augment=augment,
            binary=self.inputs.binary, epochs=t.epochs, initial_epoch=start, parallel=cfg.data.num_workers,
            steps=self.recipe.steps_per_epoch(natural, t.max_steps_per_epoch), positive=self.positive,
        )  # fmt: skip
        val_ds = evaluation_dataset(
            self.inputs.val, max(t.batch_size, 64), self.inputs.binary, positive=self.positive
        )
        model = self.compiled_model(steps, state)
        log.info("%s", self.recipe.describe())
        if state is None:
            state = TrainState(config_hash=self.key)
            log.info("training %s / %s from epoch 1 (%s, %s)", cfg.model.backbone, cfg.loss.name,
                     self.placement.description, self.policy)  # fmt: skip
        else:
            self.trim_history(start)
            log.info("resuming %s / %s at epoch %d of %d from %s", cfg.model.backbone, cfg.loss.name,
                     start + 1, t.epochs, self.state_dir)  # fmt: skip
        model.fit(
            train_ds,
            epochs=t.epochs,
            initial_epoch=start,
            steps_per_epoch=steps,
            shuffle=False,  # the order is the input pipeline's (seed, epoch) permutation
            validation_data=val_ds,
            class_weight=class_weights(self.counts) if t.balance == "class_weight" else None,
            callbacks=self.callbacks(state, augment),
            verbose=1 if t.progress else 2,
        )
        self.trained = model
        return self.history(), state

    def callbacks(self, state: TrainState, augment: Any) -> list[Any]:
        import keras

        t = self.cfg.train
        self.throughput = Throughput(t.batch_size)
        callbacks: list[Any] = [self.throughput]
        if self.recipe.batchnorm_images:  # first: the validation of every epoch sees its statistics
            callbacks.append(self.batchnorm_refresh(augment))
        callbacks += [
            keras.callbacks.CSVLogger(str(self.state_dir / HISTORY), append=True),
            keras.callbacks.TensorBoard(str(self.state_dir / "tensorboard"), profile_batch=0),
        ]
        if self.recipe.optim.scheduler == "plateau":
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(MONITOR, mode="max", factor=0.5, patience=2, verbose=1)
            )
        callbacks.append(EpochCheckpoint(self.state_dir, state, t.patience))  # last: after the CSV row
        return callbacks

    def timing(self) -> dict[str, Any] | None:
        """This process's first step (trace / compile) and steady images/s, for metrics.json."""
        throughput = getattr(self, "throughput", None)
        timing = throughput.timing() if throughput is not None else None
        if timing is not None:
            timing |= {"device": self.placement.description, "policy": self.policy}
        return timing

    def batchnorm_refresh(self, augment: Any) -> Any:
        """BatchNorm statistics from augmented training batches of another seed, before each validation."""
        from leukoscope.train.batchnorm import BatchNormRefresh
        from leukoscope.train.tfdata import Batches, steps_per_epoch

        t, train = self.cfg.train, self.inputs.train
        size = max(t.batch_size, REFRESH_BATCH)  # forward passes only: fewer, larger batches cost less
        batches = Batches(train, size, t.seed + 1, augment, self.inputs.binary, self.positive)
        steps = steps_per_epoch(min(len(train), self.recipe.batchnorm_images), size)
        return BatchNormRefresh(batches, steps)

    def trim_history(self, next_epoch: int) -> None:
        """Rows of epochs redone after a restart (logged, then killed before their state was saved)."""
        path = self.state_dir / HISTORY
        if path.is_file() and path.stat().st_size:
            frame = pd.read_csv(path)
            frame[frame["epoch"] < next_epoch].to_csv(path, index=False)

    def history(self) -> pd.DataFrame:
        path = self.state_dir / HISTORY
        if not path.is_file() or not path.stat().st_size:
            return pd.DataFrame({"epoch": pd.Series(dtype=int)})
        frame = pd.read_csv(path)
        return frame.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)

    def export_model(self) -> tuple[Any, str]:
        """The best epoch's weights in a fresh float32 model (no optimizer, no distribution strategy)."""
        import keras

        import leukoscope.models.layers  # noqa: F401  (registered layers of last.keras)
        from leukoscope.models.factory import build_classifier

        keras.mixed_precision.set_global_policy("float32")
        source = getattr(self, "trained", None)
        if source is None:
            source = keras.saving.load_model(str(self.state_dir / LAST), safe_mode=True, compile=False)
        best = self.state_dir / BEST
        if best.is_file():
            source.load_weights(str(best))
        model, feature_layer = build_classifier(self.spec(), "none")
        model.set_weights([w.numpy() if hasattr(w, "numpy") else w for w in source.get_weights()])
        return model, feature_layer
