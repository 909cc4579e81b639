"""Stage 3: timm backbones with the paper's head, weight sources, and the model card."""

from leukoscope.models.card import CARD_NAME, WEIGHTS_NAME, ModelCard, load_model, save_model
from leukoscope.models.factory import HEADS, LeukoClassifier, create_classifier
from leukoscope.models.weights import (
    BUNDLED,
    WEIGHT_SOURCES,
    bundled_state,
    hub_model,
    imagenet_model,
    load_weights,
    read_state_dict,
)

__all__ = [
    "BUNDLED",
    "CARD_NAME",
    "HEADS",
    "WEIGHTS_NAME",
    "WEIGHT_SOURCES",
    "LeukoClassifier",
    "ModelCard",
    "bundled_state",
    "create_classifier",
    "hub_model",
    "imagenet_model",
    "load_model",
    "load_weights",
    "read_state_dict",
    "save_model",
]
