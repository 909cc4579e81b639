"""Ensembles built on validation data: three methods, weights fitted there, MC dropout, TTA, specs that load
like a model (the combination rules and the MC-dropout model: tests/infer/test_ensemble.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from leukoscope.errors import ConfigError
from leukoscope.experiments._data import labelled_table
from leukoscope.experiments.ensemble import build_ensemble, fit_weights
from leukoscope.infer.batches import table_images
from leukoscope.infer.ensemble import Ensemble, Member, load_ensemble
from leukoscope.infer.spec import is_ensemble_spec, new_spec
from leukoscope.infer.tta import tta_views
from leukoscope.models.card import ModelCard


def _member_probs(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Member 0 is informative, member 1 is noise: fitted weights must prefer member 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    good = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.15, n), 0.01, 0.99)
    noise = rng.uniform(0.01, 0.99, n)
    probs = np.stack([np.stack([1 - p, p], axis=1) for p in (good, noise)])
    return probs, y


@pytest.mark.parametrize("objective", ["log-loss", "f1"])
def test_fitted_weights_prefer_the_informative_member(objective: str) -> None:
    probs, y = _member_probs()
    w = fit_weights(probs, y, objective)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w[0] > 0.75


def _preprocessed(val: Path, card: ModelCard, cache_dir: Path) -> np.ndarray:
    cached = table_images(labelled_table(val, card.class_names), card.preprocess, cache_dir)
    assert np.all(cached.ok)
    return np.array(cached.array)


def test_mean_ensemble_is_the_mean_of_members(
    member_runs: list[Path], prelim_manifest: Path, cache_dir: Path
) -> None:
    summary = build_ensemble(
        member_runs, prelim_manifest, member_runs[0].parent / "ens", cache_dir=str(cache_dir)
    )
    spec_path = Path(summary["spec"])
    assert is_ensemble_spec(spec_path) and is_ensemble_spec(spec_path.parent)
    assert not is_ensemble_spec(member_runs[0])
    saved = json.loads(spec_path.read_text())
    assert saved["method"] == "mean" and all(not Path(m).is_absolute() for m in saved["members"])
    ens = load_ensemble(spec_path)
    images = _preprocessed(prelim_manifest, ens.card, cache_dir)
    members = [Member(r, ens.card.class_names).predict(images) for r in member_runs]
    assert np.allclose(ens.predict_arrays(images), np.mean(members, axis=0), atol=1e-6)
    table = labelled_table(prelim_manifest, ens.card.class_names)
    assert np.allclose(
        ens.predict_table(table, cache_dir=str(cache_dir)), ens.predict_arrays(images), atol=1e-6
    )
    assert ens.card.class_names == ["all", "hem"] and ens.card.num_classes == 2
    assert (spec_path.parent / "report.html").is_file()


def test_weighted_and_threshold_fitted_on_validation(
    member_runs: list[Path], prelim_manifest: Path, cache_dir: Path
) -> None:
    out = member_runs[0].parent / "weighted"
    summary = build_ensemble(
        member_runs, prelim_manifest, out, method="weighted", threshold="max-f1", cache_dir=str(cache_dir)
    )
    assert summary["weights"] is not None and sum(summary["weights"]) == pytest.approx(1.0)
    ens = load_ensemble(out)
    assert ens.spec.weights == pytest.approx(summary["weights"])
    assert ens.card.threshold == pytest.approx(summary["threshold"])
    images = _preprocessed(prelim_manifest, ens.card, cache_dir)
    members = np.stack([Member(r, ens.card.class_names).predict(images) for r in member_runs])
    expected = np.tensordot(np.asarray(summary["weights"]), members, axes=1)
    assert np.allclose(ens.predict_arrays(images), expected, atol=1e-5)


def test_mc_dropout_inserts_dropout_and_is_seeded(
    member_runs: list[Path], prelim_manifest: Path, cache_dir: Path
) -> None:
    out = member_runs[0].parent / "mc"
    summary = build_ensemble(
        member_runs, prelim_manifest, out, method="mc-dropout", mc_samples=4, cache_dir=str(cache_dir)
    )
    assert any("inserted Dropout(p=0.2)" in n for n in summary["notes"])
    ens = load_ensemble(out)
    images = _preprocessed(prelim_manifest, ens.card, cache_dir)
    first = ens.predict_arrays(images)
    assert np.allclose(first, ens.predict_arrays(images))  # seeded: the same answer twice
    assert np.allclose(first.sum(axis=1), 1.0, atol=1e-5)
    samples = [ens.members[0].predict(images) for _ in range(3)]  # dropout really is active
    assert not np.allclose(samples[0], samples[1])
    plain = Member(member_runs[0], ens.card.class_names)
    assert np.allclose(plain.predict(images), plain.predict(images))  # and only in MC mode
    mc_model = ens.members[0].predictor.model
    assert {layer.name for layer in mc_model.layers} >= {"mc_dropout_inserted", "block1_bn"}


def test_tta_is_the_mean_over_views(member_runs: list[Path], prelim_manifest: Path, cache_dir: Path) -> None:
    spec = new_spec(member_runs, "mean")
    ens = Ensemble(spec, [Member(m, spec.class_names) for m in spec.members])
    images = _preprocessed(prelim_manifest, ens.card, cache_dir)
    manual = np.mean([ens.predict_arrays(v) for v in tta_views(images, "flips")], axis=0)
    assert np.allclose(ens.predict_arrays(images, tta="flips"), manual, atol=1e-5)
    assert not np.allclose(ens.predict_arrays(images, tta="d8"), ens.predict_arrays(images), atol=1e-7)


def test_members_with_different_preprocessing(
    member_runs: list[Path], prelim_manifest: Path, tmp_path: Path
) -> None:
    from infer.helpers import make_model_dir
    from leukoscope.data.images import read_image
    from leukoscope.preprocess.pipeline import preprocess_image

    bigger = make_model_dir(tmp_path / "at48", size=48)  # a model built for 48 px crops
    spec = new_spec([member_runs[0], bigger], "mean")
    ens = Ensemble(spec, [Member(m, spec.class_names) for m in spec.members])
    assert not ens.shared_preprocess
    table = labelled_table(prelim_manifest, ens.card.class_names)
    rgbs = [read_image(p) for p in table["path"]]
    with pytest.raises(ConfigError, match="preprocess images differently"):
        ens.predict_arrays(np.stack([preprocess_image(r, ens.card.preprocess) for r in rgbs]))
    probs = ens.predict_images(rgbs)
    per_member = [
        m.predict(np.stack([preprocess_image(r, m.card.preprocess) for r in rgbs])) for m in ens.members
    ]
    assert np.allclose(probs, np.mean(per_member, axis=0), atol=1e-6)


def test_validation_on_a_test_split_is_refused(
    member_runs: list[Path], prelim_manifest: Path, tmp_path: Path
) -> None:
    import pandas as pd

    test_csv = tmp_path / "test.csv"
    pd.read_csv(prelim_manifest).assign(split="test").to_csv(test_csv, index=False)
    with pytest.raises(ConfigError, match="test split"):
        build_ensemble(member_runs, test_csv, tmp_path / "x")
