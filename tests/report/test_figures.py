"""The F1 heat map: ours coloured, the paper's published value under it in each cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from leukoscope.report.figures import f1_heatmap, heatmap_labels


def test_heatmap_cells_show_ours_and_the_papers(tmp_path: Path) -> None:
    ours = pd.DataFrame(
        {"DenseNet201": [88.5, np.nan], "SimpleCNN": [70.125, 61.0]}, index=["BCE", "Focal hinge"]
    )
    paper = pd.DataFrame({"DenseNet201": [85.59, 90.7], "SimpleCNN": [None, None]}, index=ours.index)
    labels = heatmap_labels(ours, paper)
    assert labels.at["BCE", "DenseNet201"] == "88.50\n(paper 85.59)"
    assert labels.at["Focal hinge", "DenseNet201"] == "n/a\n(paper 90.70)"
    assert labels.at["BCE", "SimpleCNN"] == "70.12"  # the paper has no such cell: ours alone
    assert heatmap_labels(ours).at["Focal hinge", "SimpleCNN"] == "61.00"
    out = f1_heatmap(ours, tmp_path / "f1.png", "weighted F1 (%): ours on the validation split", paper)
    assert out.stat().st_size > 1000
