"""Stage 6: metrics (weighted F1 first), plots, prediction tables and their scores, and evaluation of a
trained model on any labelled split (predicted through `infer`, as `predict` and `serve` predict)."""
