"""Stage 3: timm backbones with the paper's head, weight sources, and the model card."""
