"""Stage 6: cross-validation, the paper's Table 2 grid, ensembles and the challenge's submission format."""
