"""Stage 1: find images, attach labels / subjects / splits, and split without leakage."""
