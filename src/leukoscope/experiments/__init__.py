"""Stage 7: fitting on validation data (ensemble weights and threshold, temperature), the challenge's
submission format, and `paper`, the published numbers the workflow compares with (grids and folds are the
Snakemake workflow's job; the ensemble as a predictor is `infer.ensemble`'s)."""
