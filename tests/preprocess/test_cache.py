from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import leukoscope.data.images as images_mod
import leukoscope.preprocess.cache as cache_mod
from leukoscope.config import PreprocessConfig
from leukoscope.data.images import read_image
from leukoscope.errors import DataError
from leukoscope.preprocess import PreprocessCache, preprocess_image

from .helpers import cell_image, write_bmp

CFG = PreprocessConfig(image_size=48)


@pytest.fixture
def sources(tmp_path: Path) -> list[Path]:
    """Five cells, one file that is not an image, one truncated BMP and one missing file."""
    paths = [
        write_bmp(tmp_path / "src" / f"cell{i}.bmp", cell_image((96, 96), (30 + 8 * i, 50), (14 + i, 10)))
        for i in range(5)
    ]
    junk = tmp_path / "src" / "junk.bmp"
    junk.write_bytes(b"this is not an image")
    truncated = tmp_path / "src" / "truncated.bmp"
    truncated.write_bytes(paths[0].read_bytes()[:500])
    return [*paths, junk, truncated, tmp_path / "src" / "missing.bmp"]


def _entries(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir())


def _fail_if_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("a cache hit must not decode images")

    monkeypatch.setattr(images_mod, "read_image", boom)


def test_build_then_hit_without_decoding(tmp_path, sources, monkeypatch):
    cache = PreprocessCache(tmp_path / "cache")
    built = cache.load(sources, CFG)
    assert not built.hit and len(built) == 8 and built.array.shape == (8, 48, 48, 3)
    assert built.ok.tolist() == [True] * 5 + [False] * 3
    assert set(built.errors) == {str(p) for p in sources[5:]}
    assert "truncated BMP" in built.errors[str(sources[6])]
    assert not built.array[5:].any()  # failed slots stay black
    for i in range(5):
        np.testing.assert_array_equal(built[i], preprocess_image(read_image(sources[i]), CFG))

    _fail_if_decoded(monkeypatch)
    hit = cache.load(sources, CFG)
    assert hit.hit and isinstance(hit.array, np.memmap) and not hit.array.flags.writeable
    np.testing.assert_array_equal(hit.array, built.array)
    assert hit.errors == built.errors and hit.paths == [str(p) for p in sources]
    # normalisation settings do not change the stored pixels, so they must not invalidate the cache
    assert cache.load(sources, PreprocessConfig(image_size=48, mean=(0.1,) * 3, std=(0.2,) * 3)).hit
    monkeypatch.chdir(sources[0].parent)
    assert cache.load([p.name for p in sources], CFG).hit  # relative paths name the same files


def test_changed_source_file_rebuilds_and_drops_old_entry(tmp_path, sources):
    cache = PreprocessCache(tmp_path / "cache")
    first = cache.load(sources, CFG)
    old_dir = first.directory
    write_bmp(sources[2], cell_image((96, 96), (48, 48), (40, 30)))  # rewrite: new content
    st = sources[2].stat()
    os.utime(sources[2], ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    second = cache.load(sources, CFG)
    assert not second.hit and second.directory != old_dir and not old_dir.exists()
    np.testing.assert_array_equal(second[2], preprocess_image(read_image(sources[2]), CFG))
    assert not np.array_equal(second[2], first[2])
    os.utime(sources[3])  # a touch alone (same bytes, new mtime) also invalidates
    assert not cache.load(sources, CFG).hit


def test_a_missing_file_that_appears_is_picked_up(tmp_path, sources):
    cache = PreprocessCache(tmp_path / "cache")
    assert not cache.load(sources, CFG).ok[7]
    write_bmp(sources[7], cell_image((96, 96)))
    again = cache.load(sources, CFG)
    assert not again.hit and again.ok[7]


def test_parameter_change_builds_a_separate_entry(tmp_path, sources):
    cache = PreprocessCache(tmp_path / "cache")
    cache.load(sources, CFG)
    other = cache.load(sources, PreprocessConfig(image_size=32, clahe=True))
    assert not other.hit and other.array.shape == (8, 32, 32, 3)
    assert len(_entries(cache.root)) == 2  # both sizes kept, e.g. for two backbones
    assert cache.load(sources, CFG).hit
    assert not cache.load(sources, PreprocessConfig(image_size=48, black_threshold=40)).hit


def test_center_crops_and_threads_give_the_same_images(tmp_path, sources):
    crops = [48] * len(sources)
    serial = PreprocessCache(tmp_path / "a").load(sources, CFG, center_crops=crops)
    threaded = PreprocessCache(tmp_path / "b").load(sources, CFG, center_crops=crops, workers=2)
    np.testing.assert_array_equal(serial.array, threaded.array)
    assert serial.errors == threaded.errors
    expected = preprocess_image(read_image(sources[1], center_crop=48), CFG)
    np.testing.assert_array_equal(serial[1], expected)
    assert not PreprocessCache(tmp_path / "a").load(sources, CFG).hit  # crops are part of the key


def test_interrupted_build_leaves_no_valid_looking_cache(tmp_path, sources, monkeypatch):
    cache = PreprocessCache(tmp_path / "cache")
    calls = {"n": 0}
    real = cache_mod.preprocess_image

    def dies_midway(rgb, cfg):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(rgb, cfg)

    monkeypatch.setattr(cache_mod, "preprocess_image", dies_midway)
    monkeypatch.setattr(cache_mod.shutil, "rmtree", lambda *a, **k: None)  # as if killed: no cleanup
    with pytest.raises(KeyboardInterrupt):
        cache.load(sources, CFG)
    leftovers = [p for p in _entries(cache.root)]
    assert leftovers and all(p.name.startswith(".build-") for p in leftovers)  # only a hidden temp dir
    monkeypatch.undo()

    rebuilt = cache.load(sources, CFG)
    assert not rebuilt.hit and rebuilt.ok[:5].all()
    assert [p.name for p in _entries(cache.root)] == [rebuilt.directory.name]  # the leftover is gone


def test_damaged_entry_is_rebuilt(tmp_path, sources):
    cache = PreprocessCache(tmp_path / "cache")
    first = cache.load(sources, CFG)
    (first.directory / "meta.json").write_text("{not json")
    assert not cache.load(sources, CFG).hit


def test_empty_list_and_default_root(tmp_path, monkeypatch):
    monkeypatch.setenv("LEUKOSCOPE_CACHE", str(tmp_path / "env-cache"))
    cache = PreprocessCache()
    assert cache.root == tmp_path / "env-cache"
    empty = cache.load([], CFG)
    assert len(empty) == 0 and empty.array.shape == (0, 48, 48, 3)
    monkeypatch.delenv("LEUKOSCOPE_CACHE")
    assert PreprocessCache().root == Path.home() / ".cache" / "leukoscope"


def test_unwritable_cache_root_is_one_clear_data_error(tmp_path, sources):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(DataError, match="cannot write the preprocessing cache") as info:
        PreprocessCache(blocker / "cache").load(sources, CFG)
    assert "LEUKOSCOPE_CACHE" in str(info.value)


def _rss_file_kib() -> int | None:
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    return None


def test_release_pages_drops_memmap_pages_from_rss(tmp_path: Path) -> None:
    """A read-only memmap read end to end stops counting towards RSS, and still reads the same bytes."""
    from leukoscope.preprocess.cache import release_pages

    if _rss_file_kib() is None:
        pytest.skip("needs Linux /proc/self/status (RssFile)")
    data = np.random.default_rng(0).integers(0, 255, (64, 512, 512, 3), dtype=np.uint8)  # 48 MiB
    np.save(tmp_path / "images.npy", data)
    array = np.load(tmp_path / "images.npy", mmap_mode="r")
    assert int(array.sum(dtype=np.int64)) == int(data.sum(dtype=np.int64))  # touches every page
    before = _rss_file_kib()
    assert release_pages(array)
    after = _rss_file_kib()
    assert before - after > 40 * 1024, (before, after)
    assert np.array_equal(array[7], data[7])
    assert not release_pages(data)  # an in-memory array has no pages to give back
