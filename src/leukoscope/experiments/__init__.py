"""Stage 6: ensembles, temperature calibration and the challenge's submission format (grids and folds are
the Snakemake workflow's job; `paper` holds the published numbers the workflow compares with)."""
