# ruff: noqa: RUF009  (`opt` returns a dataclasses.field)
"""Put a dataset in place: C-NMC 2019 from Kaggle or from a URL of a zip, a local folder, or a synthetic copy.

The workflow's `download` rule (`download_stage`, a local rule: it runs where there is internet) and
`leukoscope data fetch` both call `fetch`; the transfers themselves are `data.remote`'s. A download goes
to a hidden temporary file beside the destination, is checked against its sha256 (URL), unpacked into a
hidden temporary folder, verified file by file against the manifest of the real dataset embedded in the
package (`leukoscope.data.known`, the same check as `data check --verify-checksums`), and only then renamed
into place, so an interrupted, truncated or corrupt download never leaves anything that a rerun would take
as complete. A hidden marker inside the finished folder records what was fetched: the same request again
reuses the folder without downloading; a folder that was not made by this module is never overwritten.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import typing
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from leukoscope._io import write_json
from leukoscope.config import _build, opt
from leukoscope.data.hashing import file_digest
from leukoscope.data.readers.cnmc import find_root
from leukoscope.data.remote import KAGGLE_SLUG, TIMEOUT_S, Progress, download_file, kaggle_download, unpack
from leukoscope.errors import ConfigError, DataError

log = logging.getLogger(__name__)

Source = Literal["local", "url", "kaggle", "synthetic"]
SOURCES = typing.get_args(Source)
MARKER = ".leukoscope-download.json"  # hidden: readers and `data check` skip it
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class SyntheticConfig:
    """`leukoscope.data.synth.write_cnmc_synth`'s settings (dataset.source = synthetic)."""

    subjects: int = opt(12, "training subjects (2:1 ALL:HEM, dealt over 3 folds)", minimum=3)
    cells_per_subject: int = opt(30, "cells per training subject", minimum=1)
    prelim: int = opt(0, "labelled preliminary-test cells (new subjects)", minimum=0)
    final: int = opt(0, "unlabelled final-test cells (new subjects, 600x600 like C-NMC)", minimum=0)
    size: int = opt(450, "image side in pixels (C-NMC: 450)", minimum=32, maximum=2048)
    seed: int = opt(0, "generator seed: the same seed gives byte-identical files")
    difficulty: float = opt(0.5, "0: separable classes, 1: chance", minimum=0.0, maximum=1.0)


@dataclass
class DatasetConfig:
    """The workflow's `dataset` section: what to put where (`fetch`), then how to read it (the samples
    rule: classes, positive class, caps, unreadable files)."""

    source: Source = opt(
        "local", "local: dataset.path exists; url / kaggle / synthetic: the download rule makes it"
    )
    path: str = opt(
        "resources/C-NMC_Leukemia",
        "dataset root in any layout the readers know (C-NMC, ALL-IDB2, class folders, CSV manifest); "
        "relative to the working directory",
    )
    url: str | None = opt(None, "source url: archive to download and unpack")
    sha256: str | None = opt(None, "source url: expected SHA-256 of the archive")
    kaggle: str = opt(KAGGLE_SLUG, "source kaggle: dataset slug (owner/name; default C-NMC 2019's)")
    verify: bool = opt(
        True,
        "check a C-NMC download file by file (sha256) against the embedded manifest; a local copy only when "
        "its file list is C-NMC's; other data: a no-op with a note",
    )
    synthetic: SyntheticConfig = opt(
        factory=SyntheticConfig, help="source synthetic: the generator's settings"
    )
    classes: list[str] | None = opt(None, "restrict to / order these classes (default: the data's)")
    positive_class: str | None = opt(None, "two classes: the sigmoid's class (default: 'all' when present)")
    limit_per_class: int | None = opt(None, "cap images per class and split (smoke runs)", minimum=1)
    skip_unreadable: bool = opt(
        False, "false: unreadable images stop the samples rule (listed); true: they are left out"
    )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DatasetConfig:
        """From a `dataset` mapping (None: the default), checked (one line naming the key)."""
        request = _build(cls, {k: v for k, v in values.items() if v is not None}, "dataset.")
        request.validate()
        return request

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(
                f"dataset.source is {self.source!r}", hint=f"choose one of: {', '.join(SOURCES)}"
            )
        if not str(self.path).strip():
            raise ConfigError("dataset.path is empty", hint="name the folder the dataset goes to (or is in)")
        if self.source == "url":
            if not self.url:
                raise ConfigError("dataset.source is url but dataset.url is empty", hint="give the zip's URL")
            if not _SHA256.match((self.sha256 or "").strip().lower()):
                raise ConfigError(
                    "dataset.sha256 must be the zip's sha256 (64 hex digits)",
                    hint="a download is only taken when its checksum is known: `sha256sum FILE.zip`",
                )
        if self.source == "kaggle" and "/" not in self.kaggle:
            raise ConfigError(
                f"dataset.kaggle is {self.kaggle!r}", hint=f"an owner/name slug, e.g. {KAGGLE_SLUG}"
            )

    def identity(self) -> dict[str, Any]:
        """What decides the folder's content: a marker with the same identity means nothing to fetch."""
        if self.source == "url":
            return {"source": "url", "url": self.url, "sha256": (self.sha256 or "").lower()}
        if self.source == "kaggle":
            return {"source": "kaggle", "kaggle": self.kaggle}
        if self.source == "synthetic":
            return {"source": "synthetic", "synthetic": asdict(self.synthetic)}
        return {"source": "local"}


def fetch(
    request: DatasetConfig,
    *,
    timeout: float = TIMEOUT_S,
    progress: Progress | None = None,
    record_out: str | Path | None = None,
) -> dict:
    """Make `request.path` hold the dataset; the record, also written to `record_out` as JSON (last and
    atomically: a failed or killed fetch leaves no record that a rerun would take as complete)."""
    request.validate()
    started = time.monotonic()
    dest = Path(request.path).expanduser()
    if request.source == "local":
        record = _local(request, dest)
    else:
        record = _reuse(request, dest) or _fetch_into_place(request, dest, timeout, progress)
    record["seconds"] = round(time.monotonic() - started, 2)
    if record_out is not None:
        write_json(record_out, record)
    return record


def download_stage(dataset: Mapping[str, Any], record_out: str | Path) -> dict:
    """The workflow's `download` rule: `fetch` the `dataset` config section, logging its progress."""
    record = fetch(DatasetConfig.from_mapping(dict(dataset)), progress=_log_progress(), record_out=record_out)
    verified = record["verification"].get("verified")
    log.info("%s: %d files, verified: %s", record["path"], record["files"], verified)
    return record


def _log_progress() -> Progress:
    """Log roughly every 10% (or every 100 MB when the size is unknown)."""
    shown = {"step": -1}

    def report(done: int, total: int | None) -> None:
        step = done * 10 // total if total else done // (100 << 20)
        if step != shown["step"]:
            shown["step"] = step
            log.info("downloaded %s of %s bytes", f"{done:,}", f"{total:,}" if total else "?")

    return report


# -- sources ----------------------------------------------------------------------------------------------


def _local(request: DatasetConfig, dest: Path) -> dict:
    from leukoscope.data.readers import detect_layout

    if not dest.exists():
        raise DataError(
            "dataset folder not found",
            path=dest,
            hint="set dataset.path to your copy of C-NMC 2019, or dataset.source to kaggle, url or synthetic",
        )
    layout = detect_layout(dest)
    root = find_root(dest) if layout == "cnmc" else dest
    verification = _verify(root, request.verify, layout=layout, own_copy=True)
    return _record(request, dest, root, verification, reused=True)


def _reuse(request: DatasetConfig, dest: Path) -> dict | None:
    """The existing folder's record when it is this very request's finished download, else None."""
    marker = _read_marker(dest)
    if marker is None:
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise DataError(
                "the dataset folder exists but was not made by the download rule",
                path=dest,
                hint="set dataset.source: local for your own copy, or delete it, or pick another path",
            )
        return None
    if marker.get("identity") != request.identity():
        log.info("%s holds another download (%s): fetching again", dest, marker.get("identity"))
        return None
    verified = marker.get("verification", {}).get("verified")
    if request.verify and request.source != "synthetic" and not verified:
        log.info("%s was fetched without verification: verifying it in place", dest)
        verification = _verify(dest, True, layout="cnmc")  # not the real dataset: one line, folder kept
        marker["verification"] = verification
        marker["record"] = {**marker["record"], "verification": verification}
        write_json(dest / MARKER, marker)
    else:
        log.info("%s already holds this download: nothing to fetch", dest)
    return {**marker["record"], "reused": True}


def _fetch_into_place(request: DatasetConfig, dest: Path, timeout: float, progress: Progress | None) -> dict:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _scratch(dest, "work") as work:
        if request.source == "synthetic":
            from leukoscope.data.synth import write_cnmc_synth

            root = work / "C-NMC_Leukemia"
            write_cnmc_synth(root, **asdict(request.synthetic))
            verification = {"verified": False, "skipped": "synthetic data is not the real C-NMC 2019"}
            details: dict[str, Any] = {}
        else:
            if request.source == "url":
                archive = download_file(request.url, work / "download.zip", request.sha256, timeout, progress)
                details = {"url": request.url, "sha256": request.sha256.lower()}
                origin = request.url
            else:
                archive = kaggle_download(request.kaggle, work)
                details = {"kaggle": request.kaggle, "sha256": file_digest(archive, "sha256")}
                origin = f"kaggle dataset {request.kaggle}"
            details["archive_bytes"] = archive.stat().st_size
            root = unpack(archive, work / "unpacked", origin)
            archive.unlink()
            verification = _verify(root, request.verify, layout="cnmc")
        record = _record(request, dest, root, verification, reused=False, **details)
        marker = {"identity": request.identity(), "verification": verification, "record": record}
        (root / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _move_into_place(root, dest, work)
    return record


# -- verify ------------------------------------------------------------------------------------


def verify_cnmc(root: Path) -> dict:
    """Every file's byte size and sha256 against the real C-NMC 2019 (the `data check` comparison)."""
    from leukoscope.data.check import _found_files, cnmc_differences

    diff = cnmc_differences(root, _found_files(root), {})  # {}: hash every file, decode none
    checks = diff["checksums"]
    return {
        "verified": bool(diff["matches_known"]),
        "files_checked": checks["checked"],
        "sha256_mismatches": checks["mismatched"],
        "missing_files": diff["missing_files"],
        "extra_files": diff["extra_files"],
        "size_mismatches": diff["size_mismatches"],
        "examples": {**diff["examples"], "sha256": checks["examples"]},
    }


def _verify(root: Path, wanted: bool, layout: str, own_copy: bool = False) -> dict:
    """A download claims to be C-NMC 2019: every file is checked, any difference is an error. A local
    folder (`own_copy`) is checked only when its file list is C-NMC's (names and byte sizes): a user's own
    dataset, a synthetic or a partial copy is a no-op with a note, never a failure."""
    if not wanted:
        return {"verified": False, "skipped": "dataset.verify is false"}
    if layout != "cnmc":
        log.info("%s is a %s dataset: only C-NMC 2019 has a manifest, nothing to verify", root, layout)
        return {"verified": False, "skipped": f"only C-NMC 2019 has a manifest (this is {layout})"}
    if own_copy:
        from leukoscope.data.check import _found_files, cnmc_differences

        listing = cnmc_differences(root, _found_files(root), None)  # names and sizes: no file is read
        if not listing["matches_known"]:
            why = (
                f"not C-NMC 2019's file list ({listing['missing_files']} missing, {listing['extra_files']} "
                f"extra, {listing['size_mismatches']} of another size)"
            )
            log.info("%s: %s, so its checksums are not verified", root, why)
            return {"verified": False, "skipped": why}
    result = verify_cnmc(root)
    if not result["verified"]:
        counts = (
            f"{result['sha256_mismatches']} files differ, {result['missing_files']} missing, "
            f"{result['extra_files']} extra, {result['size_mismatches']} of another size"
        )
        example = next((v[0] for v in result["examples"].values() if v), "")
        raise DataError(
            f"the dataset is not the real C-NMC 2019 ({counts}; e.g. {example})",
            path=root,
            hint="fetch it again (a local copy: restore it from the source), or set dataset.verify: false "
            "to use a modified copy knowingly",
        )
    log.info("%s: all %d files match C-NMC 2019 (sha256)", root, result["files_checked"])
    return result


# -- bookkeeping --------------------------------------------------------------------------------------------


def _record(
    request: DatasetConfig, dest: Path, root: Path, verification: dict, *, reused: bool, **details: Any
) -> dict:
    """`path` is `dest` (where `root` is or is about to be renamed to): what the readers are given."""
    files = [p for p in _walk(root) if p.name != MARKER]
    return {
        "path": str(dest),
        "source": request.source,
        **details,
        **({"synthetic": asdict(request.synthetic)} if request.source == "synthetic" else {}),
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "verification": verification,
        "reused": reused,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _walk(root: Path) -> Iterator[Path]:
    from leukoscope.data.readers._base import walk_files

    return walk_files(root)


def _read_marker(dest: Path) -> dict | None:
    try:
        marker = json.loads((dest / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and "record" in marker else None


@contextlib.contextmanager
def _scratch(dest: Path, what: str) -> Iterator[Path]:
    """A hidden folder beside `dest` (same file system, so the final rename is atomic), always removed."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{what}-", dir=dest.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(root: Path, dest: Path, work: Path) -> None:
    """Rename the finished folder to `dest`; an older download of ours there is set aside, then deleted."""
    old = work / "previous"
    if dest.exists():
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
        else:
            os.replace(dest, old)  # only reached for a folder with our marker (see _reuse)
    os.replace(root, dest)
