"""Stage 5 tests: predictors, ensembles, batching, predict, TTA, Grad-CAM, export."""
