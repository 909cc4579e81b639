"""Stage 7: fitting on validation data (ensemble weights and threshold, temperature) and the challenge's
submission format (grids and folds are the Snakemake workflow's job; the ensemble as a predictor is
`infer.ensemble`'s)."""
