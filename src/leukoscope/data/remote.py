"""Where a dataset's bytes come from: a zip from a URL (length and sha256 checked while it streams), the
official Kaggle client, and unpacking the zip to the C-NMC root inside it. `data.download` puts them together.

A failed transfer never leaves its file behind (the caller works in a scratch folder it removes). Cheap to
import (the CLI reads KAGGLE_SLUG from here): hashlib, urllib and zipfile load when used, the Kaggle
client only for a Kaggle download, since its import authenticates.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path

from leukoscope.errors import ConfigError, DataError

log = logging.getLogger(__name__)

KAGGLE_SLUG = "andrewmvd/leukemia-classification"  # C-NMC 2019 as `C-NMC_Leukemia/` in one zip
TIMEOUT_S = 60.0  # per socket operation: a stalled transfer fails instead of hanging
_CHUNK = 1 << 20

Progress = Callable[[int, int | None], None]


def download_file(
    url: str, target: Path, sha256: str, timeout: float = TIMEOUT_S, progress: Progress | None = None
) -> Path:
    """Stream `url` to `target` checking length and sha256; on any failure `target` does not exist."""
    import hashlib
    import http.client
    import urllib.error
    import urllib.request

    expected = sha256.strip().lower()
    digest = hashlib.sha256()
    received, total = 0, None
    what = "do not use the URL until it serves the complete file; nothing was kept, run again to retry"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            for block in iter(lambda: response.read(_CHUNK), b""):
                out.write(block)
                digest.update(block)
                received += len(block)
                if progress:
                    progress(received, total)
    except urllib.error.HTTPError as exc:
        target.unlink(missing_ok=True)
        raise DataError(
            f"downloading {url} failed (HTTP {exc.code} {exc.reason})", hint="check dataset.url"
        ) from None
    except http.client.IncompleteRead as exc:
        target.unlink(missing_ok=True)
        got = received + len(exc.partial)
        raise DataError(
            f"the download from {url} is truncated ({got:,} of {total or '?'} bytes)", hint=what
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        target.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DataError(
            f"downloading {url} failed ({type(exc).__name__}: {reason})",
            hint="check the URL and that this machine reaches it (the download rule runs locally)",
        ) from None
    if total is not None and received != total:
        target.unlink(missing_ok=True)
        raise DataError(f"the download from {url} is truncated ({received:,} of {total:,} bytes)", hint=what)
    actual = digest.hexdigest()
    if actual != expected:
        target.unlink(missing_ok=True)
        raise DataError(
            f"the download from {url} has sha256 {actual}, expected {expected}",
            hint="the file is corrupt or not the one dataset.sha256 describes; nothing was kept",
        )
    log.info("downloaded %s (%s bytes, sha256 ok)", url, f"{received:,}")
    return target


def unpack(archive: Path, target: Path, origin: str) -> Path:
    """Extract the zip (CRCs checked while reading) and return the C-NMC root inside it."""
    import zipfile

    from leukoscope.data.readers.cnmc import find_root

    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(target)  # strips absolute paths and '..'
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise DataError(
            f"the archive from {origin} cannot be unpacked ({exc})",
            hint="it is damaged or not a zip; nothing was kept, run again to download it again",
        ) from None
    root = find_root(target)
    if root is None:
        children = [c for c in target.iterdir() if c.is_dir()]
        root = find_root(children[0]) if len(children) == 1 else None
    if root is None:
        raise DataError(
            f"the archive from {origin} holds no C-NMC_Leukemia/training_data folder",
            hint="is it the C-NMC 2019 dataset? nothing was kept",
        )
    return root


def _credentials() -> bool:
    """Any of the Kaggle client's own sources: a token (KAGGLE_API_TOKEN, ~/.kaggle/access_token), an OAuth
    login (~/.kaggle/credentials.json), a legacy key (kaggle.json in $KAGGLE_CONFIG_DIR or ~/.kaggle,
    KAGGLE_USERNAME + KAGGLE_KEY). Checked first: the client's own check prints a page of help and exits."""
    home = Path("~/.kaggle").expanduser()
    config = Path(os.environ.get("KAGGLE_CONFIG_DIR") or home).expanduser()
    files = (config / "kaggle.json", home / "kaggle.json", home / "access_token", home / "access_token.txt",
             home / "credentials.json")  # fmt: skip
    env = os.environ.get("KAGGLE_API_TOKEN") or (
        os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")
    )
    return bool(env) or any(f.is_file() for f in files)


def kaggle_download(slug: str, work: Path) -> Path:
    """The dataset's zip through the official Kaggle client (the `kaggle` package, in the workflow extra).
    Imported here only: its import authenticates, which a run without a Kaggle source must never do."""
    if not _credentials():
        raise ConfigError(
            "no Kaggle API credentials",
            hint="create a token (Kaggle > Settings > API) and set KAGGLE_API_TOKEN or save it as "
            "~/.kaggle/access_token (older keys: ~/.kaggle/kaggle.json); or use dataset.source: url or local",
        )
    quiet = io.StringIO()  # the client prints its help page when it cannot authenticate
    try:
        with contextlib.redirect_stdout(quiet):
            from kaggle.api.kaggle_api_extended import KaggleApi  # the package __init__ authenticates too
    except ImportError:
        raise ConfigError(
            "the Kaggle API package is not installed",
            hint="`pip install kaggle` (or the `workflow` extra) where the download runs, or use "
            "dataset.source: url or local",
        ) from None
    except (OSError, ValueError, SystemExit) as exc:  # the package's own credential check on import
        raise ConfigError(f"the Kaggle API refused the credentials ({exc})") from None
    target = work / "kaggle"
    target.mkdir()
    try:
        api = KaggleApi()
        with contextlib.redirect_stdout(quiet):
            api.authenticate()
    except (Exception, SystemExit) as exc:  # the client calls exit(1) when no credential works
        raise ConfigError(
            f"the Kaggle API refused the credentials ({type(exc).__name__})",
            hint="check the token (KAGGLE_API_TOKEN, ~/.kaggle/access_token or kaggle.json) and that this "
            "machine reaches kaggle.com",
        ) from None
    try:
        api.dataset_download_files(slug, path=str(target), unzip=False, quiet=False)
    except Exception as exc:  # network, permission (dataset rules not accepted), unknown slug
        raise DataError(
            f"downloading the Kaggle dataset {slug} failed ({type(exc).__name__}: {str(exc)[:200]})",
            hint="check the slug, the credentials and that this machine reaches kaggle.com; nothing kept",
        ) from None
    zips = sorted(target.glob("*.zip"))
    if len(zips) != 1:
        raise DataError(
            f"the Kaggle download of {slug} gave {len(zips)} zip files, expected one", path=target
        )
    return zips[0]
