"""Synthetic cells: drawn ellipses on black, like C-NMC's one-cell-on-black images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

COLOR = (190, 110, 170)  # a stained-cell purple


def cell_image(
    size: tuple[int, int] = (128, 128),
    center: tuple[int, int] = (64, 64),
    axes: tuple[int, int] = (30, 18),
    angle: float = 0.0,
    color: tuple[int, int, int] = COLOR,
) -> np.ndarray:
    """RGB uint8 image (h, w = size) with one filled ellipse; `center` is (x, y)."""
    img = np.zeros((*size, 3), np.uint8)
    cv2.ellipse(img, center, axes, angle, 0, 360, color, thickness=-1)
    cv2.circle(img, center, max(2, min(axes) // 2), (90, 40, 120), thickness=-1)  # a darker "nucleus"
    return img


def true_box(img: np.ndarray, threshold: int = 15) -> tuple[int, int, int, int]:
    """Bounding rect (x, y, w, h) of every non-black pixel: the ground truth when there is no noise."""
    return cv2.boundingRect((img.max(axis=2) > threshold).astype(np.uint8))


def write_bmp(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def stage_chain(dataset: Path, out: Path, **overrides: object) -> dict[str, Path]:
    """The workflow's data and preprocessing rules run in order on `dataset`, with the params the
    Snakefile gives them (`overrides`: workflow config keys); every file they wrote, by name."""
    import json

    from leukoscope.preprocess.stages import augment_stage, crop_stage, samples_stage, stats_stage
    from leukoscope.workflow import plan
    from leukoscope.workflow.config import WorkflowConfig

    cfg = WorkflowConfig.from_dict(dict(overrides))
    out.mkdir(parents=True, exist_ok=True)
    f = {name: out / name for name in ("record.json", "sheet.parquet", "summary.json", "check.json")}
    f["record.json"].write_text(json.dumps({"path": str(dataset)}))
    samples_stage(
        f["record.json"], plan.samples_settings(cfg), plan.augment_settings(cfg),
        f["sheet.parquet"], f["summary.json"], f["check.json"], workers=2,
    )  # fmt: skip
    for part in cfg.crop_parts:
        f[f"{part}.npy"], f[f"{part}.parquet"] = out / f"{part}.npy", out / f"{part}.parquet"
        crop_stage(
            f["sheet.parquet"], f["summary.json"], part, cfg.section("preprocess"),
            f[f"{part}.npy"], f[f"{part}.parquet"], workers=2,
        )  # fmt: skip
    train = plan.part(cfg, "train")
    shards = [out / f"shard_{k}.npy" for k in range(cfg.augment.shards)]
    f |= {s.name: s for s in shards} | {
        "augment.parquet": out / "augment.parquet",
        "stats.json": out / "stats.json",
    }
    augment_stage(
        f[f"{train}.npy"], f[f"{train}.parquet"], f["summary.json"], None, plan.augment_settings(cfg),
        shards, f["augment.parquet"],
    )  # fmt: skip
    stats_stage(cfg.stats.images, shards, f["augment.parquet"], f[f"{train}.npy"], f["stats.json"])
    return f
