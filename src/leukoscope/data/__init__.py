"""Stage 1: find images, attach labels / subjects / splits, and split without leakage.

Names are imported lazily, so `from leukoscope.data.images import read_image` (serving, inference) does
not pay for pandas and scikit-learn.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "READERS": "leukoscope.data.readers",
    "detect_layout": "leukoscope.data.readers",
    "read_dataset": "leukoscope.data.readers",
    "assert_disjoint": "leukoscope.data.splits",
    "grouped_kfold": "leukoscope.data.splits",
    "make_splits": "leukoscope.data.splits",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'leukoscope.data' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
