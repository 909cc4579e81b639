"""Content hashes of image files, to find identical files that sit in two splits under different names.

Hashes live in a small in-memory LRU cache keyed by (path, size, mtime), never on disk, so an edited file
is hashed again and nothing is left behind. Finding duplicates reads only a few small chunks of most
files: files are compared by size, then by a sampled fingerprint, and only fingerprint collisions are
hashed in full, which keeps the duplicate search over 10,000 C-NMC files to seconds.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence

_CHUNK = 4096
_MAX_ENTRIES = 100_000

_Key = tuple[str, int, int, str]
_cache: OrderedDict[_Key, str] = OrderedDict()
_lock = threading.Lock()


def _key(path: str, algo: str) -> _Key:
    st = os.stat(path)
    return path, st.st_size, st.st_mtime_ns, algo


def _get(key: _Key) -> str | None:
    with _lock:
        value = _cache.get(key)
        if value is not None:
            _cache.move_to_end(key)
        return value


def _put(key: _Key, value: str) -> str:
    with _lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > _MAX_ENTRIES:
            _cache.popitem(last=False)
    return value


def file_digest(path: str | os.PathLike[str], algo: str = "sha1") -> str:
    """Hex digest of the file's bytes (cached while the file's size and mtime stay the same)."""
    key = _key(os.fspath(path), algo)
    cached = _get(key)
    if cached is not None:
        return cached
    h = hashlib.new(algo)
    with open(key[0], "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return _put(key, h.hexdigest())


def remember_digest(path: str | os.PathLike[str], data: bytes, algo: str = "sha1") -> str:
    """Hash bytes already read (e.g. for decoding) and cache the digest for `path` if they are its bytes."""
    digest = hashlib.new(algo, data).hexdigest()
    try:
        key = _key(os.fspath(path), algo)
    except OSError:
        return digest
    if key[1] == len(data):
        _put(key, digest)
    return digest


def _fingerprint(path: str) -> str:
    """Hash of a few spread-out chunks: C-NMC files share their header and black borders, not their middle."""
    key = _key(path, "fingerprint")
    cached = _get(key)
    if cached is not None:
        return cached
    size = key[1]
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for offset in sorted({0, size // 4, size // 2, (3 * size) // 4, max(0, size - _CHUNK)}):
            fh.seek(offset)
            h.update(fh.read(_CHUNK))
    return _put(key, h.hexdigest())


def find_identical(paths: Iterable[str | os.PathLike[str]]) -> list[list[str]]:
    """Sorted groups of distinct paths whose files hold identical bytes; unreadable files are skipped."""
    unique = list(dict.fromkeys(os.fspath(p) for p in paths))
    groups: list[list[str]] = []
    for same_size in _bucket(unique, lambda p: str(os.stat(p).st_size)):
        for same_print in _bucket(same_size, _fingerprint):
            groups.extend(_bucket(same_print, file_digest))
    return sorted(sorted(g) for g in groups)


def _bucket(paths: Sequence[str], key_of: Callable[[str], str]) -> list[list[str]]:
    buckets: dict[str, list[str]] = defaultdict(list)
    for p in paths:
        try:
            buckets[key_of(p)].append(p)
        except OSError:
            continue
    return [b for b in buckets.values() if len(b) > 1]
