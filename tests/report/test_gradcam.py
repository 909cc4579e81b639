"""The Grad-CAM panel: the ensemble's right and wrong cells per class, explained by a saved member."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from leukoscope._plot import DPI
from leukoscope.errors import DataError
from leukoscope.report.gradcam import crops_of, gradcam_panel, panel_shape, panel_size, pick_cells

# (label, ensemble P(all)); "all" is the positive class
CELLS = [
    ("all", 0.9), ("all", 0.8), ("all", 0.7), ("all", 0.3),  # right: 0.9, 0.8 (0.7 is third); wrong: 0.3
    ("hem", 0.1), ("hem", 0.45), ("hem", 0.6), ("hem", 0.95), ("hem", 0.2),  # right 0.1, 0.2; wrong 0.95, 0.6
]  # fmt: skip


def _ensemble() -> pd.DataFrame:
    rows = [("test", f"c{i}.bmp", label, f"s{i % 3}", True, True, p) for i, (label, p) in enumerate(CELLS)]
    rows += [
        ("test", "broken.bmp", "all", "s0", True, False, np.nan),
        ("test", "nolabel.bmp", "", "s0", True, True, 0.99),
        ("val", "v.bmp", "all", "s0", True, True, 0.99),
    ]
    table = pd.DataFrame(rows, columns=["split", "path", "label", "subject", "subject_known", "ok", "p_all"])
    table["p_hem"] = 1.0 - table["p_all"]
    return table


def test_pick_cells_most_confident_right_and_wrong_per_class() -> None:
    cells = pick_cells(_ensemble(), "test", per_class=2, threshold=0.5, positive_class="all")
    got = list(zip(cells["label"], cells["outcome"], cells["p_positive"], strict=True))
    assert got == [
        ("all", "right", 0.9),
        ("all", "right", 0.8),
        ("all", "wrong", 0.3),
        ("hem", "right", 0.1),
        ("hem", "right", 0.2),
        ("hem", "wrong", 0.95),
        ("hem", "wrong", 0.6),
    ]
    assert cells["predicted"].tolist() == ["all", "all", "hem", "hem", "hem", "all", "all"]
    assert cells["confidence"].tolist() == pytest.approx([0.9, 0.8, 0.7, 0.9, 0.8, 0.95, 0.6])
    assert cells["rank"].tolist() == [0, 1, 0, 0, 1, 0, 1]
    lower = pick_cells(_ensemble(), "test", per_class=2, threshold=0.25, positive_class="all")
    assert (lower["outcome"] == "wrong").sum() == 2  # 0.3 is now a right "all"; the two hem wrongs stay


def test_panel_of_a_saved_member(tmp_path: Path) -> None:
    from infer.helpers import cell_image, make_model_dir
    from leukoscope.evaluate.metrics import decide
    from leukoscope.infer.predictor import load_predictor
    from leukoscope.preprocess.pipeline import preprocess_image

    model_dir = make_model_dir(tmp_path / "member", size=32)
    predictor = load_predictor(model_dir, backend="keras", precision="fp32")
    card = predictor.card
    table = _ensemble()
    crops = np.stack([preprocess_image(cell_image(i), card.preprocess) for i in range(len(table))])
    index = pd.DataFrame({"path": table["path"], "row": np.arange(len(table)), "ok": table["ok"]})
    cells = pick_cells(table, "test", per_class=2, threshold=0.5, positive_class="all")
    images = crops_of(index, crops, cells["path"].tolist())
    assert np.array_equal(images[0], crops[0]) and np.array_equal(images[-1], crops[6])  # c0 ... c6
    out = tmp_path / "gradcam.png"
    done = gradcam_panel(model_dir, cells, images, ["all", "hem"], 2, out, "Grad-CAM, test split", "all")
    png = cv2.imread(str(out))
    assert panel_shape(["all", "hem"], 2) == (4, 2)  # rows: class x right/wrong; columns: cells
    width, height = panel_size(["all", "hem"], 2)
    assert abs(png.shape[0] - height * DPI) < 1 and abs(png.shape[1] - width * DPI) < 1
    assert png.std() > 10  # tiles were drawn, not a blank page
    assert (done["outcome"] == "right").sum() == 4 and (done["outcome"] == "wrong").sum() == 3
    truth = (done["label"] == "all").to_numpy()
    assert ((done["p_positive"] >= 0.5).to_numpy() == truth).tolist() == (done["outcome"] == "right").tolist()
    # the member's own call, as `predict` makes it, is what each map explains
    probs = predictor.predict_arrays(images)
    called = decide(probs, card.threshold, card.positive_index)
    assert done["member_predicted"].tolist() == [card.class_names[i] for i in called]
    np.testing.assert_allclose(done["member_confidence"], probs[np.arange(len(probs)), called], atol=1e-5)


def test_crops_of_refuses_missing_images() -> None:
    index = pd.DataFrame({"path": ["a", "b"], "row": [0, 1], "ok": [True, False]})
    crops = np.zeros((2, 4, 4, 3), np.uint8)
    assert crops_of(index, crops, ["a"]).shape == (1, 4, 4, 3)
    with pytest.raises(DataError, match="1 of the panel's images"):
        crops_of(index, crops, ["a", "b"])  # b did not decode: no crop to explain
