"""The real C-NMC facts ship with the package (no shared data needed)."""

from __future__ import annotations

import pandas as pd

from leukoscope.data.known import cnmc_manifest
from leukoscope.data.readers.cnmc import parse_name


def cnmc_facts() -> dict:
    """Counts that describe the real dataset: files and byte sizes per part, training subjects per class."""
    df = cnmc_manifest()
    parts = {
        part: {"files": len(g), "bytes": sorted(int(b) for b in g["bytes"].unique())}
        for part, g in df.groupby("part", sort=True)
    }
    training = df[df["path"].str.startswith("training_data/")]
    parsed = training["path"].map(lambda p: parse_name(p.rpartition("/")[2].removesuffix(".bmp")))
    subjects = pd.DataFrame(parsed.tolist(), columns=["subject", "label"]).drop_duplicates("subject")
    return {
        "files": len(df),
        "parts": parts,
        "training_subjects": {k: int(v) for k, v in subjects["label"].value_counts().sort_index().items()},
    }


def test_embedded_facts_match_the_published_ones() -> None:
    facts = cnmc_facts()
    assert facts["files"] == 15_115
    assert facts["training_subjects"] == {"all": 47, "hem": 26}  # 73, parsing UID_h3 as UID_H3
    parts = facts["parts"]
    assert parts["training_data/fold_0/all"] == {"files": 2397, "bytes": [608_454]}
    assert parts["training_data/fold_2/hem"]["files"] == 1096
    assert parts["validation_data/C-NMC_test_prelim_phase_data"] == {"files": 1867, "bytes": [608_538]}
    assert parts["testing_data/C-NMC_test_final_phase_data"] == {"files": 2586, "bytes": [1_080_054]}
    lower = cnmc_manifest()["path"].str.contains("/UID_h", regex=False).sum()
    assert lower == 36
