"""Stage 5: metrics (weighted F1 first), plots, and evaluation of a trained run on any labelled split."""
