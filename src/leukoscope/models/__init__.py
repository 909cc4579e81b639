"""Stage 3: keras.applications backbones with the paper's head, weight sources, and the model card.

The card (`leukoscope.models.card`) imports no framework; the rest imports Keras on first use.
"""

from leukoscope.models.card import CARD_NAME, WEIGHTS_NAME, ModelCard, load_keras, load_model, save_model

__all__ = ["CARD_NAME", "WEIGHTS_NAME", "ModelCard", "load_keras", "load_model", "save_model"]
