"""The real C-NMC facts ship with the package (no shared data needed)."""

from __future__ import annotations

from leukoscope.data.known import cnmc_facts, cnmc_manifest


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
