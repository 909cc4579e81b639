"""Stage 3: the loss registry, in keras.ops. `get_loss(name, **params)(y_true, logits) -> mean loss`."""

from leukoscope.losses import cross_entropy, focal, hinge  # noqa: F401  (register the losses)
from leukoscope.losses.base import LOSSES, PairLoss, get_loss, list_losses

__all__ = ["LOSSES", "PairLoss", "get_loss", "list_losses"]
