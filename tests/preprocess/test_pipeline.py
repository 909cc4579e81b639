from __future__ import annotations

import numpy as np
import pytest

from leukoscope.config import PreprocessConfig
from leukoscope.errors import ConfigError
from leukoscope.preprocess import preprocess_image
from leukoscope.preprocess.pipeline import deterministic_fields

from .helpers import cell_image


@pytest.mark.parametrize("crop", ["cell", "center", "none"])
@pytest.mark.parametrize("size", [32, 160])  # shrink and grow
def test_output_is_square_uint8_of_image_size(crop, size):
    img = cell_image(size=(90, 130), center=(50, 40), axes=(20, 14))
    out = preprocess_image(img, PreprocessConfig(crop=crop, image_size=size))
    assert out.shape == (size, size, 3) and out.dtype == np.uint8 and out.flags.c_contiguous


@pytest.mark.parametrize(
    "change",
    [{"crop": "round"}, {"image_size": 0}, {"black_threshold": 300}, {"center_fraction": 0.0}],
)
def test_impossible_settings_are_config_errors(change):
    with pytest.raises(ConfigError):
        preprocess_image(cell_image(), PreprocessConfig(**change))


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32)])
def test_non_rgb_uint8_input_is_refused(bad):
    with pytest.raises(ValueError):
        preprocess_image(bad, PreprocessConfig())


def test_cache_key_fields_exclude_normalisation():
    a = deterministic_fields(PreprocessConfig())
    assert a == deterministic_fields(PreprocessConfig(normalize="backbone", mean=(0, 0, 0), std=(1, 1, 1)))
    assert a != deterministic_fields(PreprocessConfig(clahe_grid=4))
