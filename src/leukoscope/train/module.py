"""The LightningModule: `create_classifier` + `get_loss`, the paper's optimiser, per-epoch weighted F1.

Weighted F1 is computed with scikit-learn over the whole epoch (gathered from every rank), the same
function the challenge and `leukoscope evaluate` use, so the validation curve and the report agree.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from leukoscope.config import RunConfig
from leukoscope.errors import ConfigError

NEEDS_CLASS_COUNTS = ("weighted_bce", "balanced_bce")


def build_loss(cfg: RunConfig, class_counts: list[int]) -> torch.nn.Module:
    """The configured loss; class-weighted losses get the training split's class counts."""
    from leukoscope.losses import get_loss

    params = dict(cfg.loss.params)
    if cfg.loss.name in NEEDS_CLASS_COUNTS and "class_counts" not in params:
        params["class_counts"] = list(class_counts)
    return get_loss(cfg.loss.name, **params)


class CellClassifier(pl.LightningModule):
    """Backbone + paper head trained on cached cells; labels arrive as class indices.

    `config` is the resolved RunConfig as a dict (saved in checkpoints, so a resumed run rebuilds the
    same model); `init_weights=False` skips loading pretrained weights when a checkpoint will replace them.
    """

    def __init__(
        self,
        config: dict[str, Any],
        class_names: list[str],
        class_counts: list[int],
        positive_class: str | None = None,
        init_weights: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = RunConfig.from_dict(config)
        self.class_names = list(class_names)
        self.positive_index = self.class_names.index(positive_class) if positive_class else 1
        self.model = self._create_model(init_weights)
        self.loss_fn = build_loss(self.cfg, class_counts)
        self._epoch: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"train": [], "val": []}

    def _create_model(self, init_weights: bool) -> torch.nn.Module:
        from leukoscope.models.factory import create_classifier

        m = self.cfg.model
        model = create_classifier(
            m.backbone,
            len(self.class_names),
            weights=m.weights if init_weights else "none",
            head_hidden=m.head_hidden,
            dropout=m.dropout,
            drop_rate=m.drop_rate,
        )
        return model.to(memory_format=torch.channels_last) if self.cfg.train.channels_last else model

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _targets(self, y: torch.Tensor) -> torch.Tensor:
        """Two classes: float {0, 1} with 1 = the positive class (sigmoid output); else class indices."""
        return (y == self.positive_index).float() if self.binary else y.long()

    def _predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Class indices at the default 0.5 threshold (logit 0) for two classes, else argmax."""
        if self.binary:
            neg = 1 - self.positive_index
            return torch.where(logits.float() >= 0, self.positive_index, neg)
        return logits.argmax(dim=1)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self(x)
        loss = self.loss_fn(logits.float(), self._targets(y))
        self._epoch[stage].append((self._predict(logits.detach()), y.detach()))
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(y))
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, logger=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def _log_epoch_metrics(self, stage: str) -> None:
        outputs, self._epoch[stage] = self._epoch[stage], []
        if not outputs:
            return
        pred = self.all_gather(torch.cat([p for p, _ in outputs])).reshape(-1).cpu().numpy()
        true = self.all_gather(torch.cat([t for _, t in outputs])).reshape(-1).cpu().numpy()
        labels = np.arange(len(self.class_names))
        f1 = f1_score(true, pred, labels=labels, average="weighted", zero_division=0)
        # every rank holds the same gathered numbers; sync_dist only silences Lightning's DDP warning
        prog = stage == "val"
        self.log(f"{stage}/weighted_f1", float(f1), prog_bar=prog, on_epoch=True, sync_dist=True)
        self.log(f"{stage}/accuracy", float(accuracy_score(true, pred)), on_epoch=True, sync_dist=True)

    def configure_optimizers(self) -> Any:
        o = self.cfg.optim
        params = [p for p in self.parameters() if p.requires_grad]
        if o.name == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(
                params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay
            )
        elif o.name == "adamw":
            opt = torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        elif o.name == "sgd":
            opt = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        else:
            raise ConfigError(f"optim.name is {o.name!r}", hint="choose one of: adam, adamw, sgd")
        return self._with_scheduler(opt)

    def _with_scheduler(self, opt: torch.optim.Optimizer) -> Any:
        kind = self.cfg.optim.scheduler
        if kind == "none":
            return opt
        if kind == "cosine":
            epochs = max(1, int(self.trainer.max_epochs or self.cfg.train.epochs))
            return {
                "optimizer": opt,
                "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs),
            }
        if kind == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val/weighted_f1"}}
        raise ConfigError(f"optim.scheduler is {kind!r}", hint="choose one of: none, cosine, plateau")
