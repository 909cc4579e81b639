"""Real smear images (pbc-mini, CC BY 4.0) through the cache; skipped where ../shared/data is absent."""

from __future__ import annotations

import numpy as np
import pytest

from leukoscope.config import PreprocessConfig
from leukoscope.preprocess import PreprocessCache, compute_mean_std, preprocess_image
from leukoscope.preprocess.crop import cell_box

pytestmark = pytest.mark.shared


def test_pbc_mini_through_the_cache(shared_data, tmp_path):
    paths = [p for d in sorted((shared_data / "pbc-mini").iterdir()) for p in sorted(d.glob("*.jpg"))[:2]]
    assert len(paths) >= 8
    cfg = PreprocessConfig(crop="center", image_size=64)
    cached = PreprocessCache(tmp_path).load(paths, cfg, workers=2)
    assert cached.ok.all() and not cached.errors and cached.array.shape == (len(paths), 64, 64, 3)
    mean, std = compute_mean_std(cached)
    assert all(0.3 < m < 0.95 for m in mean) and all(0.02 < s < 0.4 for s in std)  # a light smear
    # no black background on a smear: the cell crop keeps (nearly) everything, hence crop="center"
    first = cached[0]
    box = cell_box(preprocess_image(first, PreprocessConfig(crop="none", image_size=64)))
    assert box is not None and box[2] * box[3] > 0.8 * 64 * 64
    assert np.array_equal(PreprocessCache(tmp_path).load(paths, cfg).array, cached.array)


def test_crop_auto_chooses_the_centre_square_on_real_smears(shared_data):
    from leukoscope.data.images import read_image
    from leukoscope.preprocess.crop import choose_crop

    paths = [p for d in sorted((shared_data / "pbc-mini").iterdir()) for p in sorted(d.glob("*.jpg"))[:3]]
    mode, why = choose_crop([read_image(str(p)) for p in paths])
    assert mode == "center" and "background" in why
