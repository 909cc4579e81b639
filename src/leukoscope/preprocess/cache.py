"""A disk cache of preprocessed images, so each source image is decoded, cropped and resized once.

Layout under the root: `<group>-<state>/images.npy` (an (N, S, S, 3) uint8 array, read back as a memmap)
and `meta.json` (paths, ok mask, errors). `group` hashes the file list and the deterministic
preprocessing settings; `state` hashes every file's size and mtime. A changed file gives a new state
(rebuild, and older states of the same group are deleted); changed settings give a new group (kept side
by side, e.g. two image sizes). A build happens in a hidden temporary folder that is renamed into place
only when complete, so an interrupted build never leaves a cache that looks valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leukoscope import _io
from leukoscope.config import PreprocessConfig
from leukoscope.data import images as _images
from leukoscope.errors import DataError
from leukoscope.preprocess.pipeline import check_config, deterministic_fields, preprocess_image

CACHE_VERSION = 1  # bump when preprocess_image's output changes for the same settings
_IMAGES = "images.npy"
_META = "meta.json"


def default_cache_root() -> Path:
    env = os.environ.get("LEUKOSCOPE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "leukoscope"


@dataclass
class CachedImages:
    """Preprocessed images of `paths`, in order; where decoding failed `ok[i]` is False, the slot black."""

    array: np.ndarray  # (N, S, S, 3) uint8, a read-only memmap when loaded from disk
    ok: np.ndarray  # (N,) bool
    paths: list[str]
    errors: dict[str, str] = field(default_factory=dict)  # path -> one-line reason
    directory: Path | None = None
    hit: bool = False  # True when served from an existing cache (nothing decoded)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.array[index]


def release_pages(array: np.ndarray) -> bool:
    """Drop a read-only memmap's pages from this process's resident set; True when it did.

    The pages stay in the kernel's page cache, so the next read is a cheap minor fault, but they no longer
    count towards the process's RSS: a training run over a 1.5 GB cache otherwise "uses" the whole cache.
    """
    mapping = getattr(array, "_mmap", None)  # numpy keeps the mmap object of a memmap here
    if mapping is None or not hasattr(mmap, "MADV_DONTNEED"):
        return False
    try:
        mapping.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # closed, or a platform without madvise on file mappings
        return False
    return True


class PreprocessCache:
    """Build-once, memory-mapped store of `preprocess_image` outputs for a list of files."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_root()

    def load(
        self,
        paths: Sequence[str | Path],
        cfg: PreprocessConfig,
        center_crops: Sequence[int] | None = None,
        workers: int = 0,
        progress: bool = False,
    ) -> CachedImages:
        """Return the cached images of `paths`, building (or rebuilding) the cache when needed.

        `center_crops[i]` > 0 keeps the centred square of that side at decode time (C-NMC final test).
        `workers` > 0 decodes in that many threads (OpenCV releases the GIL while it decodes and resizes).
        """
        check_config(cfg)
        names = [str(p) for p in paths]
        crops = [int(c) for c in center_crops] if center_crops is not None else [0] * len(names)
        if len(crops) != len(names):
            raise ValueError(f"center_crops has {len(crops)} entries for {len(names)} paths")
        size = cfg.image_size
        if not names:
            return CachedImages(np.zeros((0, size, size, 3), np.uint8), np.zeros(0, bool), [])
        group, state = _keys(names, crops, cfg)
        target = self.root / f"{group}-{state}"
        cached = _open(target, names)
        if cached is not None:
            return cached
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with _lock(self.root / f".{group}.lock"):
                cached = _open(target, names)  # another process may have built it while we waited
                if cached is not None:
                    return cached
                self._build(target, names, crops, cfg, workers, progress)
                self._drop_stale(group, keep=target)
        except OSError as exc:  # read-only folder, disk full (C-NMC at 224 px needs ~1.6 GB)
            raise DataError(
                f"cannot write the preprocessing cache ({exc.strerror or exc})",
                path=self.root,
                hint="free disk space, or point data.cache_dir / LEUKOSCOPE_CACHE at a writable folder",
            ) from None
        result = _open(target, names)
        if result is None:
            raise DataError("preprocessing cache could not be read back after building", path=target)
        result.hit = False
        return result

    def _build(
        self,
        target: Path,
        names: list[str],
        crops: list[int],
        cfg: PreprocessConfig,
        workers: int,
        progress: bool,
    ) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{target.name}-", dir=self.root))
        try:
            size = cfg.image_size
            out = np.lib.format.open_memmap(
                tmp / _IMAGES, mode="w+", dtype=np.uint8, shape=(len(names), size, size, 3)
            )
            ok = np.zeros(len(names), dtype=bool)
            errors: dict[str, str] = {}
            jobs = [(i, names[i], crops[i]) for i in range(len(names))]
            with _progress_bar(progress, len(names)) as advance:
                for i, image, error in _run(jobs, cfg, workers):
                    if error is None:
                        out[i] = image
                        ok[i] = True
                    else:
                        errors[names[i]] = error
                    advance()
            out.flush()
            del out
            _fsync(tmp / _IMAGES)
            absolute = [os.path.abspath(n) for n in names]
            meta = {"version": CACHE_VERSION, "params": deterministic_fields(cfg), "paths": absolute}
            meta |= {"center_crops": crops, "ok": ok.tolist(), "errors": errors}
            _io.write_json(tmp / _META, meta)
            if target.exists():
                if _open(target, names) is not None:  # an unlocked (Windows) twin build won: fine
                    return
                shutil.rmtree(target)  # a damaged entry (we hold the lock)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _drop_stale(self, group: str, keep: Path) -> None:
        """Older states of the same files and settings are dead weight (GBs for C-NMC); so are builds
        killed before they finished (we hold the group's lock, so no build of it is running)."""
        stale = [*self.root.glob(f"{group}-*"), *self.root.glob(f".build-{group}-*")]
        for old in stale:
            if old != keep and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)


def _keys(names: list[str], crops: list[int], cfg: PreprocessConfig) -> tuple[str, str]:
    """(group, state): group = which files and settings; state = their sizes and modification times."""
    absolute = [os.path.abspath(n) for n in names]
    group_src = json.dumps(
        {"v": CACHE_VERSION, "params": deterministic_fields(cfg), "paths": absolute, "crops": crops},
        sort_keys=True,
    )
    state = hashlib.sha256()
    for name in absolute:
        try:
            st = os.stat(name)
            state.update(f"{st.st_size}:{st.st_mtime_ns};".encode())
        except OSError:
            state.update(b"missing;")
    return hashlib.sha256(group_src.encode()).hexdigest()[:20], state.hexdigest()[:20]


def _open(directory: Path, names: list[str]) -> CachedImages | None:
    """A complete cache, or None (absent, from another file list, or damaged)."""
    try:
        meta = json.loads((directory / _META).read_text(encoding="utf-8"))
        array = np.load(directory / _IMAGES, mmap_mode="r")
    except (OSError, ValueError):
        return None
    absolute = [os.path.abspath(n) for n in names]
    if meta.get("version") != CACHE_VERSION or meta.get("paths") != absolute or array.shape[0] != len(names):
        return None
    ok = np.asarray(meta["ok"], dtype=bool)
    return CachedImages(array, ok, names, dict(meta["errors"]), directory, hit=True)


def _process(job: tuple[int, str, int], cfg: PreprocessConfig) -> tuple[int, np.ndarray | None, str | None]:
    index, name, crop = job
    try:
        rgb = _images.read_image(name, center_crop=crop)
    except DataError as exc:
        return index, None, exc.one_line()
    return index, preprocess_image(rgb, cfg), None


def _run(
    jobs: list[tuple[int, str, int]], cfg: PreprocessConfig, workers: int
) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    """Yield results in order; with threads, in windows so finished images never pile up in memory."""
    if workers <= 0:
        for job in jobs:
            yield _process(job, cfg)
        return
    window = workers * 16
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(jobs), window):
            yield from pool.map(lambda job: _process(job, cfg), jobs[start : start + window])


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Callable[[], None]]:
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("preprocessing images", total=total)
        yield lambda: bar.advance(task)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Serialise builds of the same files (e.g. several DDP ranks): one builds, the others then hit."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the atomic rename still keeps the cache valid
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())
