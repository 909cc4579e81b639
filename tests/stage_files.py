"""A small chain's files, as the workflow's predict ... ensemble rules leave them, for the stage tests.

Two losses of one backbone, two seeds each: `focal` separates the classes, `bce` guesses, so the ensemble
must choose `focal`. Splits: val and test (12 labelled cells of 3 subjects each) and final (3 unlabelled
cells, named as the challenge names them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from leukoscope._io import write_json
from leukoscope.config import PreprocessConfig
from leukoscope.evaluate.predictions import average_seeds_stage, evaluate_stage, prediction_table
from leukoscope.experiments.selection import ensemble_stage
from leukoscope.models.card import ModelCard

CLASSES = ["all", "hem"]
MODELS = ("simplecnn/bce", "simplecnn/focal")
SEEDS = (0, 1)
SPLITS = ("val", "test")


def rows(split: str) -> pd.DataFrame:
    n = 3 if split == "final" else 12
    labels = [""] * n if split == "final" else ["all", "hem"] * 6
    paths = (
        [f"{i + 1}.bmp" for i in range(n)] if split == "final" else [f"{split}/img{i}.bmp" for i in range(n)]
    )
    subjects = [f"s{i % 3}" for i in range(n)]
    return pd.DataFrame(
        {"path": paths, "label": labels, "subject": subjects, "subject_known": True, "ok": True}
    )


def seed_table(model: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([MODELS.index(model), seed])
    tables = []
    for split in (*SPLITS, "final"):
        part = rows(split)
        truth = (part["label"] == "all").to_numpy(float)
        p_all = (
            0.2 + 0.6 * truth + rng.normal(0, 0.2, len(part))
            if model.endswith("focal")
            else rng.random(len(part))
        )
        p_all = np.clip(p_all, 0.01, 0.99)
        tables.append(prediction_table(part, np.stack([p_all, 1 - p_all], axis=1), CLASSES, split))
    return pd.concat(tables, ignore_index=True)


def write_chain(root: Path) -> dict[str, Path]:
    """Seed tables, seed means, scores, the ensemble and its scores under `root`; returns the files."""
    summary = write_json(root / "samples" / "summary.json", {
        "protocol": "heldout", "class_names": CLASSES, "positive_class": "all",
        "parts": {
            **{part: {"images": 12, "per_class": {"all": 6, "hem": 6}} for part in ("train", "val", "test")},
            "final": {"images": 3, "per_class": {}},
        },
    })  # fmt: skip
    files: dict[str, Path] = {"summary": summary}
    card = ModelCard("simplecnn", CLASSES, PreprocessConfig(crop="cell", image_size=32), positive_class="all")
    for model in MODELS:
        for seed in SEEDS:
            card.save(root / "models" / model / f"seed_{seed}")  # what the ensemble's spec names
        seeds = {}
        for seed in SEEDS:
            seeds[seed] = root / "models" / model / f"seed_{seed}" / "predictions.parquet"
            seeds[seed].parent.mkdir(parents=True, exist_ok=True)
            seed_table(model, seed).to_parquet(seeds[seed], index=False)
        files[f"{model}/predictions"] = root / "models" / model / "predictions.parquet"
        average_seeds_stage(list(seeds.values()), files[f"{model}/predictions"], model)
        outputs = {split: root / "eval" / model / f"{split}.json" for split in SPLITS}
        evaluate_stage(files[f"{model}/predictions"], seeds, summary, outputs, model,
                       threshold=0.5, bootstrap=50, bootstrap_seed=0)  # fmt: skip
        files |= {f"{model}/{split}": path for split, path in outputs.items()}
    ensemble = {
        "spec": root / "ensemble" / "ensemble.json",
        "choice": root / "ensemble" / "choice.json",
        "predictions": root / "ensemble" / "predictions.parquet",
    }
    ensemble_stage(
        {m: files[f"{m}/val"] for m in MODELS},
        {m: [str(root / "models" / m / f"seed_{s}" / "predictions.parquet") for s in SEEDS] for m in MODELS},
        summary, ensemble["spec"], ensemble["choice"], ensemble["predictions"],
        backbones=["simplecnn"], losses=["bce", "focal"], select="weighted_f1", threshold=0.5,
    )  # fmt: skip
    files |= {f"ensemble/{k}": v for k, v in ensemble.items()}
    outputs = {split: root / "eval" / "ensemble" / f"{split}.json" for split in SPLITS}
    evaluate_stage(ensemble["predictions"], {}, summary, outputs, "ensemble",
                   threshold=0.5, bootstrap=50, bootstrap_seed=0)  # fmt: skip
    return files | {f"ensemble/{split}": path for split, path in outputs.items()}
