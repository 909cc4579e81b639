"""`leukoscope data check`: is this dataset what it claims to be, and can it be split without leaking?

Every image is decoded (through `data.images`, as training will), so unreadable, truncated and odd files
are found before a run, not in the middle of one. Problems are file faults and leaks: unreadable or
non-image files, unparsable names, duplicates, subjects in two splits. For C-NMC the copy is also compared
with the real dataset's file list; those differences are informational (a synthetic or partial copy is
a legitimate thing to check) and never count as problems.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from leukoscope.data.hashing import remember_digest
from leukoscope.data.images import decode_image, is_image_name
from leukoscope.data.readers import detect_layout, read_dataset
from leukoscope.data.readers._base import walk_files
from leukoscope.data.readers.cnmc import PRELIM_LABELS, find_root
from leukoscope.data.table import problem, table_problems
from leukoscope.errors import DataError

UNSPLIT = "unsplit"  # the split name shown for datasets that have none
_EXAMPLES = 5
_MODE_NAMES = {"L": "grayscale", "LA": "grayscale+alpha", "P": "palette", "1": "1-bit", "I;16": "grayscale"}


@dataclass
class CheckReport:
    """Everything `data check` found; `to_dict()` is the `--json` output."""

    path: str
    layout: str
    n_images: int
    n_readable: int
    classes: dict[str, int]
    subjects: int
    subject_known: bool
    splits: dict[str, dict]
    sizes: dict[str, int]
    problems: list[dict[str, str]]
    differences: dict | None = None
    checksums_verified: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.n_readable > 0

    def problem_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(p["kind"] for p in self.problems).items()))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["usable"] = self.usable
        out["problem_counts"] = self.problem_counts()
        return out


@dataclass
class _Probe:
    ok: bool
    size: int = 0
    description: str = ""
    sha1: str = ""
    sha256: str = ""
    error: str = ""


def check_dataset(
    path: str | Path,
    *,
    verify_checksums: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Read, decode and cross-check a dataset. DataError only when it cannot be read as any layout."""
    path = Path(path)
    layout = detect_layout(path)
    table = read_dataset(path, layout)
    verify_checksums = verify_checksums and layout == "cnmc"  # only C-NMC has a manifest to compare with
    probes = _probe_all(table, verify_checksums, workers, progress)
    problems = table_problems(table)
    problems += [problem("unreadable", p, pr.error) for p, pr in probes.items() if not pr.ok and pr.error]
    root = _walk_root(path, layout)
    found = _found_files(root) if root else {}
    problems += _stray_files(root, found, table, problems) if root else []
    problems += _duplicates(table, probes)
    problems += _subject_leaks(table, root or path)
    report = _summarise(path, layout, table, probes, problems)
    if layout == "cnmc" and root is not None:
        report.differences = cnmc_differences(root, found, probes if verify_checksums else None)
        report.checksums_verified = verify_checksums
    if not report.subject_known:
        report.notes.append(
            "some images have no known subject: each is its own subject, "
            "so a split cannot rule out a patient leak"
        )
    return report


def _probe_all(
    table: pd.DataFrame, verify: bool, workers: int | None, progress: Callable[[int, int], None] | None
) -> dict[str, _Probe]:
    paths = list(dict.fromkeys(table["path"]))
    n_workers = workers or min(8, os.cpu_count() or 1)
    results: dict[str, _Probe] = {}
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        for i, (p, probe) in enumerate(zip(paths, pool.map(lambda q: _probe(q, verify), paths), strict=True)):
            results[p] = probe
            if progress:
                progress(i + 1, len(paths))
    return results


def _probe(path: str, verify: bool) -> _Probe:
    """Read once, hash, decode; every failure becomes a message, never an exception."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return _Probe(False, error=f"cannot read file ({exc.strerror or exc})")
    sha1 = remember_digest(path, data)
    sha256 = hashlib.sha256(data).hexdigest() if verify else ""
    try:
        decode_image(data, name=path)
    except DataError as exc:
        return _Probe(False, len(data), sha1=sha1, sha256=sha256, error=exc.what)
    except Exception as exc:  # a decoder bug must not stop the check of the other files
        return _Probe(
            False, len(data), sha1=sha1, sha256=sha256, error=f"decoder failed ({type(exc).__name__})"
        )
    return _Probe(True, len(data), describe_image(data), sha1, sha256)


def describe_image(data: bytes) -> str:
    """'450x450 RGB', 'WxH grayscale 16-bit', ... from the header (the decoded array is always RGB)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            mode = _MODE_NAMES.get(im.mode, "grayscale" if im.mode.startswith("I;16") else im.mode)
            bits = getattr(im, "tag_v2", {}).get(258)  # TIFF BitsPerSample
    except Exception:
        return "unknown"
    depth = max(bits) if isinstance(bits, tuple) else bits
    if im.mode.startswith("I;16") or (isinstance(depth, int) and depth > 8):
        mode += " 16-bit"
    return f"{width}x{height} {mode}"


def _walk_root(path: Path, layout: str) -> Path | None:
    """The folder whose every file belongs to the dataset (None for a CSV manifest)."""
    if layout == "cnmc":
        return find_root(path)
    return path if path.is_dir() else None


def _found_files(root: Path) -> dict[str, int]:
    """{posix path relative to root: byte size} of every non-hidden file."""
    found = {}
    for f in walk_files(root):
        try:
            found[f.relative_to(root).as_posix()] = f.stat().st_size
        except OSError:
            continue
    return found


def _stray_files(
    root: Path, found: dict[str, int], table: pd.DataFrame, problems: list[dict[str, str]]
) -> list[dict[str, str]]:
    """Non-image files, and images the reader did not place (wrong folder) that it did not report."""
    listed = set(table["path"]) | {p["path"] for p in problems}
    out = []
    for rel in found:
        full = os.path.abspath(root / rel)
        if full in listed or rel == PRELIM_LABELS:
            continue
        if is_image_name(rel):
            out.append(problem("ignored_image", full, "image outside the layout's folders; not used"))
        else:
            out.append(
                problem("non_image", full, "not an image file (bmp, png, jpg, tif); remove or move it")
            )
    return out


def _duplicates(table: pd.DataFrame, probes: dict[str, _Probe]) -> list[dict[str, str]]:
    """Identical files: across splits they leak; within one they count the same cell twice."""
    split_of = dict(zip(table["path"], table["split"].replace("", UNSPLIT), strict=True))
    label_of = dict(zip(table["path"], table["label"], strict=True))
    groups: dict[str, list[str]] = defaultdict(list)
    for p, pr in probes.items():
        if pr.sha1:
            groups[pr.sha1].append(p)
    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        splits = sorted({split_of[m] for m in members})
        labels = sorted({label_of[m] for m in members})
        others = ", ".join(f"{_short(m)} ({split_of[m]})" for m in members[1:])
        kind = "duplicate_across_splits" if len(splits) > 1 else "duplicate"
        message = f"identical to {others}"
        if len(labels) > 1:
            message += f"; labels disagree: {', '.join(labels)}"
        out.append(problem(kind, members[0], message))
    return out


def _subject_leaks(table: pd.DataFrame, where: Path) -> list[dict[str, str]]:
    known = table[table["subject_known"]]
    spread = known.groupby("subject")["split"].unique()
    return [
        problem("subject_leak", where, f"subject {s} has images in {', '.join(sorted(v))}")
        for s, v in spread.items()
        if len(v) > 1
    ]


def _short(path: str) -> str:
    return "/".join(Path(path).parts[-3:])


def _summarise(
    path: Path, layout: str, table: pd.DataFrame, probes: dict[str, _Probe], problems: list[dict[str, str]]
) -> CheckReport:
    labelled = table[table["label"] != ""]
    ok = [pr for pr in probes.values() if pr.ok]
    return CheckReport(
        path=str(path),
        layout=layout,
        n_images=len(table),
        n_readable=sum(probes[p].ok for p in table["path"]),
        classes=_counts(labelled["label"]),
        subjects=int(labelled["subject"].nunique()),
        subject_known=bool(labelled["subject_known"].all()) if len(labelled) else False,
        splits=_split_summary(table),
        sizes=dict(Counter(pr.description for pr in ok).most_common()),
        problems=problems,
    )


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}


def _split_summary(table: pd.DataFrame) -> dict[str, dict]:
    out = {}
    for split, g in table.groupby(table["split"].replace("", UNSPLIT), sort=False):
        labelled = g[g["label"] != ""]
        out[str(split)] = {
            "n_images": len(g),
            "classes": _counts(labelled["label"]),
            "unlabelled": int(len(g) - len(labelled)),
            "subjects": int(g.loc[g["subject_known"], "subject"].nunique()),
            "subject_known": bool(g["subject_known"].all()),
        }
    return dict(sorted(out.items()))


def cnmc_differences(root: Path, found: dict[str, int], probes: dict[str, _Probe] | None) -> dict:
    """How this copy differs from the real C-NMC 2019 file list (per part; per file with checksums)."""
    from leukoscope.data.known import cnmc_manifest, part_of

    known = cnmc_manifest().set_index("path")
    expected = known["bytes"].to_dict()
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    resized = sorted(p for p in set(found) & set(expected) if found[p] != expected[p])
    parts = _part_table(expected, found, part_of)
    out = {
        "matches_known": not (missing or extra or resized),
        "parts": parts,
        "missing_files": len(missing),
        "extra_files": len(extra),
        "size_mismatches": len(resized),
        "examples": {"missing": missing[:_EXAMPLES], "extra": extra[:_EXAMPLES], "size": resized[:_EXAMPLES]},
    }
    if probes is not None:
        out["checksums"] = _checksums(root, found, known["lfs_sha256"].to_dict(), probes)
        out["matches_known"] = out["matches_known"] and out["checksums"]["mismatched"] == 0
    return out


def _part_table(expected: dict[str, int], found: dict[str, int], part_of: Callable[[str], str]) -> dict:
    table: dict[str, dict] = {}
    for side, files in (("expected", expected), ("found", found)):
        for rel, size in files.items():
            entry = table.setdefault(
                part_of(rel), {"expected": 0, "found": 0, "expected_bytes": {}, "found_bytes": {}}
            )
            entry[side] += 1
            sizes = entry[f"{side}_bytes"]
            sizes[str(size)] = sizes.get(str(size), 0) + 1
    return dict(sorted(table.items()))


def _checksums(root: Path, found: dict[str, int], known: dict[str, str], probes: dict[str, _Probe]) -> dict:
    """sha256 of every file that the real dataset also has, against the real one's."""
    checked, bad = 0, []
    for rel in sorted(set(found) & set(known)):
        full = os.path.abspath(root / rel)
        probe = probes.get(full)
        digest = probe.sha256 if probe and probe.sha256 else _sha256(full)
        if digest is None:
            continue
        checked += 1
        if digest != known[rel]:
            bad.append(rel)
    return {"checked": checked, "mismatched": len(bad), "examples": bad[:_EXAMPLES]}


def _sha256(path: str) -> str | None:
    from leukoscope.data.hashing import file_digest

    try:
        return file_digest(path, "sha256")
    except OSError:
        return None
