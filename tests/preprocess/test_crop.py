from __future__ import annotations

import numpy as np
import pytest

from leukoscope.config import PreprocessConfig
from leukoscope.errors import ConfigError
from leukoscope.preprocess.crop import cell_box, crop_center, pad_to_square, resize_square
from leukoscope.preprocess.pipeline import preprocess_image

from .helpers import cell_image, true_box


def _close(box: tuple[int, ...] | None, truth: tuple[int, ...], tol: int = 1) -> bool:
    assert box is not None
    (x, y, w, h), (tx, ty, tw, th) = box, truth
    return all(abs(a - b) <= tol for a, b in [(x, tx), (y, ty), (x + w, tx + tw), (y + h, ty + th)])


@pytest.mark.parametrize(
    ("center", "axes", "angle"),
    [((64, 64), (30, 18), 0.0), ((30, 95), (20, 12), 30.0), ((100, 20), (18, 25), 0.0)],
    ids=["centred", "off-centre", "off-centre-tall"],
)
def test_cell_box_is_tight(center, axes, angle):
    img = cell_image(center=center, axes=axes, angle=angle)
    assert _close(cell_box(img), true_box(img))


def test_cell_touching_the_border():
    img = cell_image(center=(6, 120), axes=(25, 20))  # cut off on the left and bottom
    box = cell_box(img)
    assert box is not None and box[0] == 0 and box[1] + box[3] == 128
    assert _close(box, true_box(img))


def test_speckle_and_dust_are_ignored():
    img = cell_image(center=(70, 60), axes=(22, 16))
    truth = true_box(img)
    rng = np.random.default_rng(0)
    ys, xs = rng.integers(0, 128, 300), rng.integers(0, 128, 300)
    img[ys, xs] = 255  # isolated hot pixels, some next to the cell
    img[5:9, 5:9] = 200  # a 4x4 dust spot: survives the opening, but is not the largest blob
    x, y, w, h = truth
    img[y + h // 2, x - 1] = img[y + h // 2, x + w] = 255  # hot pixels touching the cell's extremes
    img[y + h, x + w // 2] = 255
    for k in range(12):  # a 1-px scratch running off the cell: connected, but thinner than any cell part
        img[y - 1 - k, x + w // 2 + k] = 230
    assert _close(cell_box(img), truth)


def test_dim_background_below_threshold_is_black():
    img = cell_image()
    truth = true_box(img)
    img[img.max(axis=2) == 0] = 12  # uneven "black" background of a scanner
    assert _close(cell_box(img, black_threshold=15), truth)
    assert cell_box(img, black_threshold=5) == (0, 0, 128, 128)


def test_all_black_image_falls_back_to_whole_image():
    img = np.zeros((100, 80, 3), np.uint8)
    assert cell_box(img) is None
    out = preprocess_image(img, PreprocessConfig(image_size=32))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8 and not out.any()


def test_cell_crop_keeps_aspect_ratio_by_padding():
    img = cell_image(center=(40, 90), axes=(36, 18))  # a wide cell: 73 x 37 px
    _, _, tw, th = true_box(img)
    out = preprocess_image(img, PreprocessConfig(crop="cell", image_size=96))
    _, y, w, h = cell_box(out)
    assert w >= 94  # the cell fills the width: the crop was tight
    assert h == pytest.approx(96 * th / tw, abs=2)  # not stretched to the full height
    assert y == pytest.approx((96 - h) / 2, abs=1.5)  # centred, black bands top and bottom
    assert not out[:10].any() and not out[-10:].any()


def test_center_crop_takes_the_centred_fraction():
    img = np.arange(100 * 160 * 3, dtype=np.uint32).reshape(100, 160, 3).astype(np.uint8)
    out = crop_center(img, 0.5)
    assert out.shape == (50, 50, 3)
    np.testing.assert_array_equal(out, img[25:75, 55:105])
    res = preprocess_image(img, PreprocessConfig(crop="center", center_fraction=0.5, image_size=50))
    np.testing.assert_array_equal(res, out)


def test_crop_none_pads_to_square_then_resizes():
    img = np.full((60, 120, 3), 200, np.uint8)
    out = preprocess_image(img, PreprocessConfig(crop="none", image_size=64))
    assert out.shape == (64, 64, 3)
    assert not out[:14].any() and not out[-14:].any()  # 30 of 120 px black bands -> 16 of 64
    assert (out[18:46] == 200).all()


def test_pad_to_square_centres_the_content():
    img = np.full((10, 4, 3), 7, np.uint8)
    sq = pad_to_square(img)
    assert sq.shape == (10, 10, 3)
    assert (sq[:, 3:7] == 7).all() and not sq[:, :3].any() and not sq[:, 7:].any()


def test_shrinking_uses_area_interpolation():
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    img = np.repeat(checker[:, :, None], 3, axis=2)
    small = resize_square(img, 16)
    assert small.shape == (16, 16, 3)
    assert np.abs(small.astype(int) - 127.5).max() <= 1  # area-averaged, not aliased to 0 / 255
    big = resize_square(img[:8, :8], 32)
    assert big.shape == (32, 32, 3)


def test_crop_auto_follows_the_background():
    from leukoscope.data.synth import SubjectStyle, render_cell
    from leukoscope.preprocess.crop import border_black_share, choose_crop

    rng = np.random.default_rng(0)
    on_black = [render_cell(rng, "all", SubjectStyle.draw(rng), size=96) for _ in range(5)]
    assert min(border_black_share(c) for c in on_black) > 0.9
    assert choose_crop(on_black)[0] == "cell"
    smear = [np.clip(c.astype(int) + 150, 0, 255).astype(np.uint8) for c in on_black]  # a pink background
    mode, why = choose_crop(smear)
    assert mode == "center" and "0% of the image border is black" in why
    with pytest.raises(ConfigError, match="auto must be resolved"):
        preprocess_image(on_black[0], PreprocessConfig(crop="auto"))


def test_crop_auto_on_a_table_of_files(tmp_path):
    """`sample_crop`: what the samples rule and `leukoscope train` resolve `crop: auto` with; unreadable
    files are passed over, and a table without `center_crop` reads whole images."""
    import cv2
    import pandas as pd

    from leukoscope.data.synth import SubjectStyle, render_cell
    from leukoscope.preprocess.crop import sample_crop

    rng = np.random.default_rng(1)
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"cell{i}.png")
        cv2.imwrite(str(paths[-1]), render_cell(rng, "hem", SubjectStyle.draw(rng), size=64)[:, :, ::-1])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    rows = pd.DataFrame({"path": [*map(str, paths), str(tmp_path / "broken.png")]})
    crop, why = sample_crop(rows)
    assert crop == "cell" and why.startswith("preprocess.crop auto: cells on black")
    assert sample_crop(rows.assign(center_crop=0))[0] == "cell"
