"""Stage 8: the paper's tables (beside its published numbers, `paper`), seaborn figures, the cross-validation
summary.

Framework-free: everything is computed from the workflow's JSON and parquet files, never from a model,
except the Grad-CAM panel (`gradcam`), which loads each ensemble member through `infer.explain`.
"""
