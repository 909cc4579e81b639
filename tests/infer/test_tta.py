"""TTA views are the dihedral transforms they claim to be, and averaging keeps probabilities valid."""

from __future__ import annotations

import numpy as np
import pytest

from leukoscope.errors import ConfigError
from leukoscope.infer.tta import tta_predict, tta_views


def _batch(n: int = 2, size: int = 6) -> np.ndarray:
    return np.arange(n * size * size * 3, dtype=np.uint8).reshape(n, size, size, 3)


@pytest.mark.parametrize(("mode", "count"), [("none", 1), ("flips", 3), ("d8", 8)])
def test_view_counts_and_shapes(mode: str, count: int) -> None:
    batch = _batch()
    views = tta_views(batch, mode)
    assert len(views) == count
    assert all(v.shape == batch.shape and v.dtype == batch.dtype for v in views)
    np.testing.assert_array_equal(views[0], batch)


def test_flips_are_identity_horizontal_vertical() -> None:
    batch = _batch()
    views = tta_views(batch, "flips")
    np.testing.assert_array_equal(views[1], batch[:, :, ::-1])
    np.testing.assert_array_equal(views[2], batch[:, ::-1, :])


def test_d8_is_the_full_dihedral_group() -> None:
    batch = _batch(1)
    img = batch[0]
    expected = [np.rot90(img, k) for k in range(4)] + [np.rot90(img[:, ::-1], k) for k in range(4)]
    got = [v[0] for v in tta_views(batch, "d8")]
    as_bytes = {e.tobytes() for e in expected}
    assert len(as_bytes) == 8  # the test image has no symmetry, so the 8 views must all differ
    assert {g.tobytes() for g in got} == as_bytes


def test_nchw_views_match_nhwc() -> None:
    batch = _batch()
    nchw = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
    views = zip(tta_views(batch, "d8"), tta_views(nchw, "d8", channels_last=False), strict=True)
    for nhwc_view, nchw_view in views:
        np.testing.assert_array_equal(nchw_view.transpose(0, 2, 3, 1), nhwc_view)


def test_tta_predict_averages_over_views() -> None:
    batch = _batch(3).astype(np.float32)

    def corner(views: np.ndarray) -> np.ndarray:  # depends on orientation: the top-left pixel
        p = views[:, 0, 0, 0] / 255.0
        return np.stack([p, 1 - p], axis=1)

    out = tta_predict(corner, batch, "d8")
    expected = np.mean([corner(v) for v in tta_views(batch, "d8")], axis=0)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert not np.allclose(out, corner(batch))  # averaging changed something
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)


def test_unknown_mode_is_a_user_error() -> None:
    with pytest.raises(ConfigError, match="unknown TTA mode"):
        tta_views(_batch(), "d4")
