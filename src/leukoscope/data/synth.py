"""A synthetic dataset in C-NMC 2019's exact layout, so the whole pipeline runs (and is tested) without
the real images, which cannot be redistributed.

Each image is one stained cell on black, drawn with numpy/OpenCV on the cell's bounding box only:
- class morphology: blasts (ALL) are larger, with a higher nucleus/cytoplasm ratio, fine chromatin,
  visible nucleoli and an irregular outline; normal cells (HEM) are smaller, round, with dense clumped
  chromatin;
- per-subject stain (hue, intensity) and cell size, independent of the class, so a model that sees a
  subject in training and validation can recognise the subject: a leak is measurable;
- random position (sometimes off-centre) and rotation;
- `difficulty` in [0, 1] pulls both classes' morphology toward a common mean (by difficulty squared)
  and draws a share of cells (10% x difficulty) with the other class's morphology, so accuracy has a
  ceiling below 100% (0: separable, 1: chance). At the default 0.5 (30 subjects x 30 cells, 128 px),
  gradient boosting on hand-made shape/texture features scores ~0.80 accuracy with subject-grouped
  folds and ~0.98 with an image-level (leaky) split of the same data: a subject leak is measurable.
- about 15 ms per 450x450 image on one core (1,020 images in ~30 s, most of it BMP writing).
Every image has its own seeded generator (seed, part, subject, cell): the same seed gives byte-identical
files whatever else changes.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from leukoscope.data.readers.cnmc import FINAL_DIR, PRELIM_DIR, PRELIM_LABELS, TRAIN_DIR
from leukoscope.errors import ConfigError, DataError

FOLDS = 3
CNMC_SIZE = 450
FINAL_SIDE = 600  # C-NMC final-test images are 600x600 around a 450x450 centre


@dataclass(frozen=True)
class Morphology:
    """Shape and texture of one class; lengths are fractions of the image side or of the cell radius."""

    radius: float  # cell radius / image side
    nc_ratio: float  # nucleus radius / cell radius
    irregularity: float  # amplitude of the outline's low harmonics
    nucleus_irregularity: float
    elongation: float  # largest axis ratio
    chromatin_grain: float  # texture scale in pixels at 450 px: fine (blast) vs clumped (normal)
    chromatin_contrast: float
    nucleus_darkness: float
    nucleoli: float  # mean count


BLAST = Morphology(0.25, 0.82, 0.05, 0.07, 1.25, 1.2, 0.12, 0.0, 2.0)
NORMAL = Morphology(0.19, 0.66, 0.012, 0.02, 1.08, 4.5, 0.38, 0.18, 0.1)
ATYPICAL_SHARE = 0.1  # at difficulty 1, a tenth of the cells look like the other class

_CYTOPLASM = np.array([0.74, 0.64, 0.84], np.float32)  # pale lavender, RGB in [0, 1]
_NUCLEUS = np.array([0.46, 0.24, 0.58], np.float32)  # purple


@dataclass(frozen=True)
class SubjectStyle:
    """What makes one subject's cells recognisable whatever their class: stain and size."""

    size_scale: float
    gain: np.ndarray  # per-channel stain gain (hue) x intensity

    @classmethod
    def draw(cls, rng: np.random.Generator) -> SubjectStyle:
        hue = rng.normal(1.0, 0.07, 3)
        intensity = rng.normal(1.0, 0.08)
        return cls(float(np.exp(rng.normal(0.0, 0.07))), (hue * intensity).astype(np.float32))


def morphology(label: str, difficulty: float) -> Morphology:
    """The class's morphology pulled toward the two classes' mean by `difficulty`."""
    own = BLAST if label == "all" else NORMAL
    sep = 1.0 - difficulty**2  # gentle at first: the default 0.5 keeps 75% of the class difference
    values = {}
    for f in fields(Morphology):
        a, b, mine = getattr(BLAST, f.name), getattr(NORMAL, f.name), getattr(own, f.name)
        mid = (a + b) / 2
        values[f.name] = mid + sep * (mine - mid)
    return Morphology(**values)


def render_cell(
    rng: np.random.Generator,
    label: str,
    style: SubjectStyle,
    *,
    size: int = CNMC_SIZE,
    difficulty: float = 0.5,
) -> np.ndarray:
    """One cell on black, RGB uint8 (size, size, 3)."""
    if rng.random() < ATYPICAL_SHARE * difficulty:
        label = "hem" if label == "all" else "all"
    m = morphology(label, difficulty)
    radius = m.radius * size * style.size_scale * float(np.exp(rng.normal(0.0, 0.08)))
    elong = 1.0 + rng.uniform(0.0, m.elongation - 1.0)
    extent = radius * np.sqrt(elong) * (1.0 + 3.0 * m.irregularity) + 2.0
    cx, cy = _centre(rng, size, extent)
    x0, x1 = max(0, int(cx - extent)), min(size, int(np.ceil(cx + extent)) + 1)
    y0, y1 = max(0, int(cy - extent)), min(size, int(np.ceil(cy + extent)) + 1)
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
    cell = _blob(rng, xs, ys, radius, elong, m.irregularity)
    nuc_r = radius * float(np.clip(m.nc_ratio + rng.normal(0.0, 0.04), 0.4, 0.92))
    shift = (radius - nuc_r) * rng.uniform(0.0, 0.8)
    angle = rng.uniform(0.0, 2 * np.pi)
    nx, ny = shift * np.cos(angle), shift * np.sin(angle)
    nucleus = _blob(rng, xs - nx, ys - ny, nuc_r, 1.0 + rng.uniform(0, 0.15), m.nucleus_irregularity) * cell
    patch = _stain(rng, m, style, cell, nucleus, (nx - x0 + cx, ny - y0 + cy), nuc_r, size)
    image = np.zeros((size, size, 3), np.uint8)
    image[y0:y1, x0:x1] = patch
    return image


def _centre(rng: np.random.Generator, size: int, extent: float) -> tuple[float, float]:
    """Near the centre, one cell in five well off it, always fully inside the image."""
    spread = 0.18 if rng.random() < 0.2 else 0.04
    lo, hi = min(extent, size / 2), max(size - extent, size / 2)
    cx, cy = (np.clip(size / 2 + rng.normal(0.0, spread * size, 2), lo, hi)).tolist()
    return float(cx), float(cy)


def _blob(
    rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, radius: float, elong: float, irregularity: float
) -> np.ndarray:
    """Coverage in [0, 1] of a rotated, elongated shape with a wobbly outline (1-pixel anti-aliasing)."""
    psi = rng.uniform(0.0, np.pi)
    c, s = np.float32(np.cos(psi)), np.float32(np.sin(psi))
    u = (xs * c + ys * s) / np.float32(np.sqrt(elong))
    v = (ys * c - xs * s) * np.float32(np.sqrt(elong))
    rho = np.hypot(u, v)
    theta = np.arctan2(v, u)
    edge = np.ones_like(rho)
    for k in range(2, 6):
        amp = np.float32(irregularity * rng.normal() / np.sqrt(k - 1))
        edge += amp * np.cos(k * theta + np.float32(rng.uniform(0, 2 * np.pi)))
    return np.clip(radius * edge - rho + 0.5, 0.0, 1.0)


def _stain(
    rng: np.random.Generator,
    m: Morphology,
    style: SubjectStyle,
    cell: np.ndarray,
    nucleus: np.ndarray,
    nuc_centre: tuple[float, float],
    nuc_r: float,
    size: int,
) -> np.ndarray:
    """Colour the cell: cytoplasm, textured nucleus, nucleoli, sensor noise; black outside."""
    grain = max(0.6, m.chromatin_grain * size / CNMC_SIZE)
    texture = cv2.GaussianBlur(rng.standard_normal(cell.shape, dtype=np.float32), (0, 0), grain)
    texture = np.tanh(1.5 * texture / (texture.std() + 1e-6))
    shade = np.clip(1.0 - m.nucleus_darkness - m.chromatin_contrast * texture, 0.2, 1.2)
    lighten = 0.45 * _nucleoli(rng, m, cell.shape, nuc_centre, nuc_r, size) * nucleus
    cyto = _CYTOPLASM * style.gain
    nuc = (_NUCLEUS * style.gain) * shade[..., None]
    nuc = nuc * (1.0 - lighten[..., None]) + cyto * lighten[..., None]
    colour = cyto * (1.0 - nucleus[..., None]) + nuc * nucleus[..., None]
    colour += rng.normal(0.0, 0.015, colour.shape).astype(np.float32)
    rgb = colour * cell[..., None]
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _nucleoli(
    rng: np.random.Generator,
    m: Morphology,
    shape: tuple[int, ...],
    centre: tuple[float, float],
    r: float,
    size: int,
) -> np.ndarray:
    layer = np.zeros(shape, np.float32)
    for _ in range(min(4, int(rng.poisson(m.nucleoli)))):
        angle, dist = rng.uniform(0, 2 * np.pi), r * rng.uniform(0.0, 0.5)
        x, y = centre[0] + dist * np.cos(angle), centre[1] + dist * np.sin(angle)
        axes = (max(1, round(r * rng.uniform(0.08, 0.15))), max(1, round(r * rng.uniform(0.06, 0.12))))
        cv2.ellipse(layer, (round(x), round(y)), axes, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA)
    if layer.any():
        layer = cv2.GaussianBlur(layer, (0, 0), max(0.7, 1.5 * size / CNMC_SIZE))
    return layer


def encode_bmp(rgb: np.ndarray) -> bytes:
    """24-bit BMP bytes (a 450x450 image is 608,454 bytes, like C-NMC's training files)."""
    ok, buf = cv2.imencode(".bmp", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise DataError("OpenCV could not encode a BMP image")
    return buf.tobytes()


@dataclass(frozen=True)
class _Subject:
    uid: str  # "UID_7" or "UID_H3"
    label: str
    index: int  # global, for seeding
    style: SubjectStyle


def _subjects(seed: int, part: int, n_all: int, n_hem: int, start_all: int, start_hem: int) -> list[_Subject]:
    out = []
    for i in range(n_all + n_hem):
        is_all = i < n_all
        number = start_all + i if is_all else f"H{start_hem + i - n_all}"
        rng = np.random.default_rng([seed, part, 0, i])
        out.append(
            _Subject(f"UID_{number}", "all" if is_all else "hem", part * 10_000 + i, SubjectStyle.draw(rng))
        )
    return out


def _cell_names(subject: _Subject, n: int, rng: np.random.Generator) -> list[str]:
    """UID_<subject>_<image>_<cell>_<label>: 1 to 3 cells per source image, as in C-NMC."""
    names, image, cell = [], 1, 1
    for _ in range(n):
        names.append(f"{subject.uid}_{image}_{cell}_{subject.label}")
        if cell >= 3 or rng.random() < 0.5:
            image, cell = image + 1, 1
        else:
            cell += 1
    return names


def _split_counts(n_subjects: int) -> tuple[int, int]:
    """Roughly C-NMC's 2:1 ALL:HEM subjects, at least one of each."""
    n_all = min(n_subjects - 1, max(1, round(n_subjects * 2 / 3)))
    return n_all, n_subjects - n_all


@dataclass(frozen=True)
class _Spec:
    subjects: int
    cells: int
    size: int
    seed: int
    difficulty: float
    prelim: int
    final: int

    def validate(self) -> None:
        if self.subjects < FOLDS:
            raise ConfigError(f"--subjects must be at least {FOLDS} (one per fold), got {self.subjects}")
        if self.cells < 1:
            raise ConfigError(f"--cells-per-subject must be at least 1, got {self.cells}")
        if not 32 <= self.size <= 2048:
            raise ConfigError(f"--size must be between 32 and 2048 pixels, got {self.size}")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ConfigError(f"--difficulty must be between 0 and 1, got {self.difficulty}")
        if self.prelim < 0 or self.final < 0:
            raise ConfigError("--prelim and --final must not be negative")

    def cell(self, subject: _Subject, *key: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, *key])
        return render_cell(rng, subject.label, subject.style, size=self.size, difficulty=self.difficulty)


def write_cnmc_synth(
    out: str | Path,
    *,
    subjects: int = 12,
    cells_per_subject: int = 30,
    size: int = CNMC_SIZE,
    seed: int = 0,
    difficulty: float = 0.5,
    prelim: int = 0,
    final: int = 0,
) -> dict:
    """Write a synthetic C-NMC_Leukemia-style folder at `out` (which must not hold files); return counts.

    Written to a temporary sibling folder first, then renamed: an interrupted run leaves no half dataset.
    """
    spec = _Spec(subjects, cells_per_subject, size, seed, difficulty, prelim, final)
    spec.validate()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError("output folder is not empty", path=out, hint="choose a new folder or delete this one")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        summary = _write_all(tmp, spec)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary["path"] = str(out)
    return summary


def _write_all(root: Path, spec: _Spec) -> dict:
    n_all, n_hem = _split_counts(spec.subjects)
    train = _subjects(spec.seed, 1, n_all, n_hem, 1, 1)
    folds = _assign_folds(train, spec.seed)
    for fold in range(FOLDS):
        for label in ("all", "hem"):
            (root / TRAIN_DIR / f"fold_{fold}" / label).mkdir(parents=True)
    counts = {f"fold_{i}": {"all": 0, "hem": 0} for i in range(FOLDS)}
    for subject in train:
        fold = f"fold_{folds[subject.uid]}"
        names = _cell_names(subject, spec.cells, np.random.default_rng([spec.seed, 1, 1, subject.index]))
        for j, name in enumerate(names):
            rgb = spec.cell(subject, 2, subject.index, j)
            (root / TRAIN_DIR / fold / subject.label / f"{name}.bmp").write_bytes(encode_bmp(rgb))
        counts[fold][subject.label] += len(names)
    summary: dict = {"training": counts, "subjects": {"all": n_all, "hem": n_hem}}
    first = (n_all + 1, n_hem + 1)
    if spec.prelim:
        summary["prelim"] = _write_test(root, spec, "prelim", spec.prelim, first)
    if spec.final:
        summary["final"] = _write_test(root, spec, "final", spec.final, (first[0] + 500, first[1] + 500))
    summary["n_images"] = spec.subjects * spec.cells + spec.prelim + spec.final
    return summary


def _assign_folds(subjects: list[_Subject], seed: int) -> dict[str, int]:
    """Each class's subjects dealt round-robin over the folds (shuffled), so every fold gets both classes."""
    rng = np.random.default_rng([seed, 3])
    folds: dict[str, int] = {}
    offset = 0
    for label in ("all", "hem"):
        members = [s for s in subjects if s.label == label]
        for k, i in enumerate(rng.permutation(len(members))):
            folds[members[i].uid] = (k + offset) % FOLDS
        offset += len(members)
    return folds


def _write_test(root: Path, spec: _Spec, part: str, n: int, first: tuple[int, int]) -> dict[str, int]:
    """Prelim (labelled, with its CSV) or final (unlabelled, 600x600) images of new subjects, shuffled."""
    part_id = 4 if part == "prelim" else 5
    people = _subjects(spec.seed, part_id, *_split_counts(max(2, round(n / spec.cells))), *first)
    order = np.random.default_rng([spec.seed, part_id, 1]).permutation(n) + 1
    folder = root / (PRELIM_DIR if part == "prelim" else FINAL_DIR)
    folder.mkdir(parents=True)
    labels, counts = [], {"all": 0, "hem": 0}
    for j in range(n):
        subject = people[j % len(people)]
        rgb = spec.cell(subject, part_id, 2, j)
        if part == "final":
            rgb = _pad_to(rgb, round(spec.size * FINAL_SIDE / CNMC_SIZE))
        (folder / f"{order[j]}.bmp").write_bytes(encode_bmp(rgb))
        patient = f"{subject.uid}_{j // len(people) + 1}_1_{subject.label}.bmp"  # its name before renaming
        labels.append((int(order[j]), patient, subject.label))
        counts[subject.label] += 1
    if part == "prelim":
        _write_labels(root / PRELIM_LABELS, sorted(labels))
    return counts


def _pad_to(rgb: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    top, left = (side - h) // 2, (side - w) // 2
    return cv2.copyMakeBorder(rgb, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=0)


def _write_labels(path: Path, rows: list[tuple[int, str, str]]) -> None:
    """C-NMC's prelim labels CSV: Patient_ID (the original file name), new_names (N.bmp), labels (1 = ALL)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["Patient_ID", "new_names", "labels"])
    for number, patient, label in rows:
        writer.writerow([patient, f"{number}.bmp", 1 if label == "all" else 0])
    path.write_text(buf.getvalue(), encoding="utf-8")
