"""Ensembles of trained runs, saved as a spec (`ensemble.json`) that predicts like one model.

Methods:
- `mean`: the average of the members' probabilities (the paper's DenseNet201 + EfficientNetB2 ensemble).
- `weighted`: a convex combination whose weights are fitted on VALIDATION data, minimising log-loss
  (default: smooth, hard to overfit) or maximising weighted F1 (a simplex grid).
- `mc-dropout`: Monte-Carlo dropout confidence weighting after Yang & Staib's C-NMC 2019 entry: each
  member runs `mc_samples` times with its dropout layers active (only dropout: batch norm and stochastic
  depth stay in inference mode; see `mc_dropout_model`) and every image gets, per member, the mean of
  those samples weighted by the member's confidence on THAT image. Confidence is the inverse predictive
  variance of the samples (`inverse-variance`, default) or one minus the normalised entropy of their mean
  (`entropy`). A member without dropout gets a `Dropout(mc_p)` inserted before its output layer
  (recorded in the spec's notes). The masks are seeded (`seed`): the same spec gives the same answer.

Members keep their own preprocessing, normalisation and temperature. When every member shares the
deterministic preprocessing (crop, size, CLAHE), `predict_arrays` takes one preprocessed batch like any
model; otherwise use `predict_images` (raw RGB) or `predict_table`, which preprocess per member.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leukoscope import __version__
from leukoscope._io import write_json
from leukoscope.errors import ConfigError, ModelError
from leukoscope.models.card import CARD_NAME, ModelCard

ENSEMBLE_NAME = "ensemble.json"
SPEC_KIND = "leukoscope-ensemble"
METHODS = ("mean", "weighted", "mc-dropout")
CONFIDENCES = ("inverse-variance", "entropy")
OBJECTIVES = ("log-loss", "f1")
VAR_EPS = 1e-4  # keeps a member whose samples agree exactly from taking all the weight of every image


@dataclass
class EnsembleSpec:
    members: list[str]  # run directories; relative paths are relative to the spec's folder
    class_names: list[str]
    method: str = "mean"
    weights: list[float] | None = None  # `weighted` only; sums to 1
    positive_class: str | None = None
    threshold: float = 0.5
    mc_samples: int = 16
    mc_p: float = 0.2
    confidence: str = "inverse-variance"
    seed: int = 0
    tta: str = "none"  # what the spec was validated with (predict/evaluate choose their own)
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    kind: str = SPEC_KIND
    leukoscope_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | Path = "") -> EnsembleSpec:
        if data.get("kind") != SPEC_KIND or not isinstance(data.get("members"), list):
            raise ModelError("not a LeukoScope ensemble spec", path=path)
        known = set(cls.__dataclass_fields__)
        spec = cls(**{k: v for k, v in data.items() if k in known})
        check_spec(spec, path)
        return spec


def check_spec(spec: EnsembleSpec, path: str | Path = "") -> None:
    if spec.method not in METHODS:
        raise ConfigError(
            f"unknown ensemble method {spec.method!r}", hint=f"choose one of: {', '.join(METHODS)}"
        )
    if spec.confidence not in CONFIDENCES:
        raise ConfigError(
            f"unknown confidence {spec.confidence!r}", hint=f"choose one of: {', '.join(CONFIDENCES)}"
        )
    if len(spec.members) < 1:
        raise ModelError("an ensemble needs at least one member", path=path)
    if spec.method == "weighted":
        w = np.asarray(spec.weights if spec.weights is not None else [], dtype=float)
        if w.shape != (len(spec.members),) or (w < 0).any() or not np.isclose(w.sum(), 1.0, atol=1e-6):
            raise ModelError(
                "ensemble weights must be one non-negative number per member, summing to 1", path=path
            )
    if spec.mc_samples < 2 or not 0.0 < spec.mc_p < 1.0:
        raise ConfigError("mc-dropout needs mc_samples >= 2 and 0 < mc_p < 1")


def spec_file(path: str | Path) -> Path:
    path = Path(path)
    return path / ENSEMBLE_NAME if path.is_dir() else path


def is_ensemble_spec(path: str | Path) -> bool:
    """A folder with `ensemble.json` (and no model card) or a JSON file of kind leukoscope-ensemble."""
    path = Path(path)
    if path.is_dir():
        return (path / ENSEMBLE_NAME).is_file() and not (path / CARD_NAME).is_file()
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("kind") == SPEC_KIND
    except (OSError, ValueError, AttributeError):
        return False


def read_spec(path: str | Path) -> tuple[EnsembleSpec, Path]:
    """(spec, its file); member paths are resolved against the file's folder."""
    file = spec_file(path)
    if not file.is_file():
        raise ModelError("ensemble spec not found", path=file, hint="make one with `leukoscope ensemble`")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"ensemble spec is damaged ({exc})", path=file) from None
    spec = EnsembleSpec.from_dict(data, file)
    spec.members = [str((file.parent / m).resolve()) for m in spec.members]
    return spec, file


def save_spec(path: str | Path, spec: EnsembleSpec) -> Path:
    """Write the spec atomically; members are stored relative to it so the folder can move with its runs."""
    file = Path(path) if Path(path).suffix.lower() == ".json" else Path(path) / ENSEMBLE_NAME
    data = spec.to_dict()
    data["members"] = [_relative(m, file.parent) for m in spec.members]
    return write_json(file, data)


def _relative(member: str, base: Path) -> str:
    try:
        return os.path.relpath(Path(member).resolve(), base.resolve())
    except ValueError:  # another drive (Windows)
        return str(Path(member).resolve())


# --- members -------------------------------------------------------------------------------------------


class MCDropout:
    """Factory of the always-on dropout layer MC sampling uses (built lazily: Keras loads on first use)."""

    _cls: Any = None

    @classmethod
    def layer(cls, rate: float, seed: int, name: str) -> Any:
        if cls._cls is None:
            import keras

            class AlwaysDropout(keras.layers.Layer):
                """Dropout that drops at inference too, from its own seeded generator (reset per pass)."""

                def __init__(self, rate: float, seed: int = 0, **kwargs: Any) -> None:
                    super().__init__(**kwargs)
                    self.rate = float(rate)
                    self.generator = keras.random.SeedGenerator(seed)

                def call(self, inputs: Any) -> Any:
                    return keras.random.dropout(inputs, self.rate, seed=self.generator)

                def reset(self, seed: int) -> None:
                    state = self.generator.state
                    state.assign(np.asarray([seed, 0], dtype=state.dtype))

            cls._cls = AlwaysDropout
        return cls._cls(rate, seed, name=name)


def mc_dropout_model(model: Any, p: float, seed: int = 0) -> tuple[Any, list[Any], bool]:
    """(model whose dropout layers always drop, those layers, whether one had to be inserted).

    Only plain dropout is switched on: batch normalisation stays in inference mode, and per-sample
    dropout (`noise_shape`, EfficientNet's stochastic depth) stays off. Every other layer is shared with
    `model` (same weights). A model without dropout gets `Dropout(p)` before its `logits` layer.
    """
    import keras

    from leukoscope.models.factory import LOGITS_NAME

    made: list[Any] = []

    def clone(layer: Any) -> Any:
        if isinstance(layer, keras.layers.Dropout) and layer.rate > 0 and layer.noise_shape is None:
            made.append(MCDropout.layer(layer.rate, seed, f"{layer.name}_mc"))
            return made[-1]
        return layer

    mc = keras.models.clone_model(model, clone_function=clone)
    if made:
        return mc, made, False
    logits = model.get_layer(LOGITS_NAME)
    drop = MCDropout.layer(p, seed, "mc_dropout_inserted")
    return keras.Model(model.input, logits(drop(logits.input))), [drop], True


class Member:
    """One trained model behind a predictor, its outputs reordered to the ensemble's class order."""

    def __init__(
        self,
        path: str | Path,
        class_names: Sequence[str],
        precision: str = "auto",
        compile: bool = False,
        backend: str = "auto",
        cache_export: bool = False,
    ) -> None:
        from leukoscope.infer.predictor import load_predictor

        if is_ensemble_spec(path):
            raise ModelError("an ensemble member cannot itself be an ensemble", path=path)
        self.predictor = load_predictor(
            path, backend=backend, precision=precision, compile=compile, cache_export=cache_export
        )
        card = self.predictor.card
        if sorted(card.class_names) != sorted(class_names):
            raise ModelError(
                f"member classes {card.class_names} differ from the ensemble's {list(class_names)}", path=path
            )
        self.path = str(path)
        self.card = card
        self.order = [card.class_names.index(c) for c in class_names]
        self.mc_note = ""
        self._mc_layers: list[Any] = []

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predictor.predict_arrays(images)[:, self.order]

    def enable_mc_dropout(self, p: float, seed: int = 0) -> str:
        """Predict through a copy of the Keras model whose dropout layers stay on (`mc_dropout_model`)."""
        from leukoscope.infer.predictor import KerasPredictor

        if not isinstance(self.predictor, KerasPredictor):
            raise ConfigError(
                f"mc-dropout needs the Keras model, not the {self.predictor.backend} backend",
                path=self.path,
                hint="use --backend keras (or auto) with model folders that have model.keras",
            )
        base = self.predictor
        mc, self._mc_layers, inserted = mc_dropout_model(base.model, p, seed)
        # fp32: a bf16 copy would rebuild the dropout layers and lose their seeded generators
        self.predictor = KerasPredictor(mc, base.card, model_id=base.model_id, precision="fp32")
        if inserted:
            self.mc_note = (
                f"{Path(self.path).name}: no dropout in the model, inserted Dropout(p={p}) before the output"
            )
        return self.mc_note

    def reset_mc_seed(self, seed: int) -> None:
        """The same Monte-Carlo masks again: each pass of `Ensemble` starts from the spec's seed."""
        for layer in self._mc_layers:
            layer.reset(seed)


# --- combination ---------------------------------------------------------------------------------------


def member_confidence(samples: np.ndarray, kind: str) -> np.ndarray:
    """(T, N, C) Monte-Carlo samples -> (N,) confidence per image (higher = more trusted)."""
    if kind == "inverse-variance":
        return 1.0 / (samples.var(axis=0).mean(axis=1) + VAR_EPS)
    mean = np.clip(samples.mean(axis=0), 1e-12, 1.0)
    entropy = -(mean * np.log(mean)).sum(axis=1) / np.log(mean.shape[1])
    return np.clip(1.0 - entropy, 1e-6, None)


def combine(member_probs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(M, N, C) -> (N, C). `weights` (M,) is one weight per member, (M, N) one per member and image."""
    if weights is None:
        return member_probs.mean(axis=0)
    w = np.asarray(weights, dtype=np.float64)
    w = w[:, None] if w.ndim == 1 else w
    w = w / w.sum(axis=0, keepdims=True)
    return np.einsum("mn,mnc->nc", w, member_probs)


def fit_weights(
    member_probs: np.ndarray,
    y: np.ndarray,
    objective: str = "log-loss",
    threshold: float = 0.5,
    positive_index: int = 1,
) -> np.ndarray:
    """Convex member weights fitted on validation probabilities (M, N, C) and labels (N,)."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r}", hint=f"choose one of: {', '.join(OBJECTIVES)}")
    if len(member_probs) == 1:
        return np.ones(1)
    if objective == "f1":
        return _grid_f1_weights(member_probs, y, threshold, positive_index)
    return _log_loss_weights(member_probs, y)


def _log_loss_weights(member_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize

    picked = member_probs[:, np.arange(len(y)), y]  # (M, N): each member's probability of the truth

    def loss(theta: np.ndarray) -> float:
        w = np.exp(theta - theta.max())
        w /= w.sum()
        return float(-np.mean(np.log(np.clip(w @ picked, 1e-12, None))))

    theta = minimize(loss, np.zeros(len(member_probs)), method="L-BFGS-B").x
    w = np.exp(theta - theta.max())
    return w / w.sum()


def _simplex_grid(m: int, step: float) -> np.ndarray:
    n = round(1 / step)

    def rec(k: int, left: int) -> list[list[int]]:
        if k == 1:
            return [[left]]
        return [[i, *rest] for i in range(left + 1) for rest in rec(k - 1, left - i)]

    return np.asarray(rec(m, n), dtype=np.float64) / n


def _grid_f1_weights(
    member_probs: np.ndarray, y: np.ndarray, threshold: float, positive_index: int
) -> np.ndarray:
    from leukoscope.evaluate.bootstrap import metric_value
    from leukoscope.evaluate.metrics import decide

    m = len(member_probs)
    if m > 5:
        raise ConfigError("objective f1 searches a grid and supports at most 5 members", hint="use log-loss")
    grid = _simplex_grid(m, 0.05 if m <= 3 else 0.1)
    uniform = np.full(m, 1.0 / m)
    best, best_key = uniform, (-1.0, 0.0)
    for w in grid:
        probs = np.tensordot(w, member_probs, axes=1)
        f1 = metric_value("weighted_f1", y, probs, decide(probs, threshold, positive_index))
        key = (round(f1, 12), -float(np.abs(w - uniform).sum()))  # ties: the most even weights
        if key > best_key:
            best, best_key = w, key
    return best


# --- the ensemble --------------------------------------------------------------------------------------

ImagesFor = Callable[[Member], np.ndarray]


class Ensemble:
    """Predicts like one model (`card`, `predict_arrays`) from several runs."""

    def __init__(self, spec: EnsembleSpec, members: list[Member]) -> None:
        self.spec = spec
        self.members = members
        if spec.method == "mc-dropout":
            notes = [m.enable_mc_dropout(spec.mc_p, spec.seed) for m in members]
            spec.notes = sorted(set(spec.notes) | {n for n in notes if n})
        self.shared_preprocess = _shared_preprocess(members)
        self.card = self._card()
        self.model_id = self.card.model_id
        self.precision = members[0].predictor.precision
        self.backend = "+".join(sorted({m.predictor.backend for m in members}))

    def _card(self) -> ModelCard:
        from dataclasses import replace

        first = self.members[0].card
        digest = hashlib.sha1(json.dumps([self.spec.members, self.spec.method]).encode()).hexdigest()[:10]
        return ModelCard(
            backbone="ensemble(" + "+".join(m.card.backbone for m in self.members) + ")",
            class_names=list(self.spec.class_names),
            preprocess=replace(first.preprocess),
            weights_source="ensemble",
            positive_class=self.spec.positive_class,
            threshold=float(self.spec.threshold),
            temperature=1.0,  # each member applies its own
            data_summary={"members": list(self.spec.members), "method": self.spec.method},
            metrics=dict(self.spec.metrics),
            model_id=f"ensemble-{digest}",
        )

    def _member_output(
        self, member: Member, images: np.ndarray, tta: str
    ) -> tuple[np.ndarray, np.ndarray | None]:
        from leukoscope.experiments._data import predict_batched

        if self.spec.method != "mc-dropout":
            return predict_batched(member.predict, images, tta), None
        member.reset_mc_seed(self.spec.seed)
        samples = np.stack(
            [predict_batched(member.predict, images, tta) for _ in range(self.spec.mc_samples)]
        )
        return samples.mean(axis=0), member_confidence(samples, self.spec.confidence)

    def predict_members(
        self, images_for: ImagesFor, tta: str = "none"
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(M, N, C) member probabilities and, for mc-dropout, (M, N) confidences."""
        outputs = [self._member_output(m, images_for(m), tta) for m in self.members]
        probs = np.stack([o[0] for o in outputs])
        conf = np.stack([o[1] for o in outputs]) if self.spec.method == "mc-dropout" else None
        return probs, conf

    def combine(self, member_probs: np.ndarray, confidences: np.ndarray | None = None) -> np.ndarray:
        if self.spec.method == "weighted":
            return combine(member_probs, np.asarray(self.spec.weights))
        if self.spec.method == "mc-dropout":
            return combine(member_probs, confidences)
        return combine(member_probs)

    def predict_with(self, images_for: ImagesFor, tta: str = "none") -> np.ndarray:
        return self.combine(*self.predict_members(images_for, tta)).astype(np.float32)

    def predict_arrays(self, images: np.ndarray, tta: str = "none") -> np.ndarray:
        """Probabilities for images preprocessed with `card.preprocess` (members must share it)."""
        if not self.shared_preprocess:
            raise ConfigError(
                "the ensemble's members preprocess images differently, so one preprocessed batch cannot "
                "feed them all",
                hint="predict from raw images (Ensemble.predict_images / predict_table)",
            )
        images = np.asarray(images)
        return self.predict_with(lambda _m: images[None] if images.ndim == 3 else images, tta)

    def predict_images(self, rgbs: Sequence[np.ndarray], tta: str = "none") -> np.ndarray:
        """Probabilities for raw RGB uint8 images of any size: each member preprocesses them its own way."""
        from leukoscope.preprocess.pipeline import preprocess_image

        def images_for(member: Member) -> np.ndarray:
            return np.stack([preprocess_image(rgb, member.card.preprocess) for rgb in rgbs])

        return self.predict_with(images_for, tta)

    def predict_paths(self, paths: Sequence[str | Path], tta: str = "none") -> np.ndarray:
        """Probabilities for image files (decoded once, preprocessed per member); unreadable files raise."""
        from leukoscope.data.images import read_image

        return self.predict_images([read_image(p) for p in paths], tta)

    def table_members(
        self, table: Any, tta: str = "none", cache_dir: str | Path | None = None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Member outputs for a sample table through the preprocessing cache; plus the readable mask."""
        from leukoscope.experiments._data import cached_images

        ok_all = np.ones(len(table), dtype=bool)

        def images_for(member: Member) -> np.ndarray:
            images, ok = cached_images(table, member.card.preprocess, cache_dir)
            ok_all[:] &= ok
            return images

        probs, conf = self.predict_members(images_for, tta)
        return probs, conf, ok_all

    def predict_table(self, table: Any, tta: str = "none", cache_dir: str | Path | None = None) -> np.ndarray:
        probs, conf, _ = self.table_members(table, tta, cache_dir)
        return self.combine(probs, conf).astype(np.float32)


def _shared_preprocess(members: list[Member]) -> bool:
    from leukoscope.preprocess.pipeline import deterministic_fields

    first = deterministic_fields(members[0].card.preprocess)
    return all(deterministic_fields(m.card.preprocess) == first for m in members[1:])


def load_ensemble(
    path: str | Path,
    precision: str = "auto",
    *,
    compile: bool = False,
    backend: str = "auto",
    cache_export: bool = False,
) -> Ensemble:
    """An `Ensemble` from an `ensemble.json` (or the folder holding it); members run on `backend`
    (auto: each member's fastest; mc-dropout needs Keras, so auto means keras there). `cache_export`: as
    in `load_predictor`, per member."""
    spec, _ = read_spec(path)
    if spec.method == "mc-dropout" and backend == "auto":
        backend = "keras"
    members = [Member(m, spec.class_names, precision, compile, backend, cache_export) for m in spec.members]
    return Ensemble(spec, members)


def new_spec(run_dirs: Sequence[str | Path], method: str = "mean", **options: Any) -> EnsembleSpec:
    """A spec whose class order and positive class come from the first member's card."""
    if not run_dirs:
        raise ConfigError("an ensemble needs at least one run directory")
    first = ModelCard.load(run_dirs[0])
    if method == "weighted" and options.get("weights") is None:
        options["weights"] = [1.0 / len(run_dirs)] * len(run_dirs)  # until fitted on validation
    spec = EnsembleSpec(
        members=[str(Path(r).resolve()) for r in run_dirs],
        class_names=list(first.class_names),
        method=method,
        positive_class=first.positive_class if first.num_classes == 2 else None,
        **options,
    )
    check_spec(spec)
    return spec


# --- building an ensemble on validation data -----------------------------------------------------------


def build_ensemble(
    run_dirs: Sequence[str | Path],
    val: str | Path,
    out: str | Path,
    *,
    method: str = "mean",
    objective: str = "log-loss",
    confidence: str = "inverse-variance",
    mc_samples: int = 16,
    mc_p: float = 0.2,
    tta: str = "none",
    threshold: str = "fixed",
    bootstrap: int = 0,
    cache_dir: str | None = None,
    seed: int = 0,
    val_split: str | None = None,
) -> dict[str, Any]:
    """Fit (weights, threshold) on VALIDATION data, score ensemble and members there, save the spec."""
    from leukoscope.evaluate.thresholds import tune_for_classes
    from leukoscope.experiments._data import drop_unreadable, labels_of, validation_table
    from leukoscope.infer.tta import check_mode

    check_mode(tta)
    options = {"confidence": confidence, "mc_samples": mc_samples, "mc_p": mc_p, "tta": tta, "seed": seed}
    spec = new_spec(run_dirs, method, **options)
    backend = "keras" if method == "mc-dropout" else "auto"
    ens = Ensemble(spec, [Member(m, spec.class_names, backend=backend) for m in spec.members])
    table = validation_table(val, spec.class_names, spec.members, val_split)
    member_probs, conf, ok = ens.table_members(table, tta, cache_dir)
    table = drop_unreadable(table, ok, "validation")
    member_probs, conf = member_probs[:, ok], (conf[:, ok] if conf is not None else None)
    y = labels_of(table, spec.class_names)
    pos = ens.card.positive_index
    if method == "weighted":
        spec.weights = fit_weights(member_probs, y, objective, spec.threshold, pos).round(6).tolist()
        spec.weights = (np.asarray(spec.weights) / np.sum(spec.weights)).tolist()
    probs = ens.combine(member_probs, conf)
    spec.threshold = tune_for_classes(
        threshold, y, probs, spec.class_names, spec.positive_class, spec.threshold
    )
    ens.card.threshold = spec.threshold
    summary = _validation_summary(ens, member_probs, probs, table, y, bootstrap, seed, objective)
    spec.metrics = {k: summary[k] for k in ("split", "n", "weighted_f1", "accuracy", "roc_auc")}
    path = save_spec(out, spec)
    _write_ensemble_report(Path(path).parent, ens, summary, table, y, probs)
    return summary | {
        "spec": str(path),
        "method": method,
        "weights": spec.weights,
        "threshold": spec.threshold,
    }


def _validation_summary(
    ens: Ensemble,
    member_probs: np.ndarray,
    probs: np.ndarray,
    table: Any,
    y: np.ndarray,
    bootstrap: int,
    seed: int,
    objective: str,
) -> dict[str, Any]:
    from leukoscope.evaluate.bootstrap import bootstrap_ci
    from leukoscope.evaluate.calibration import calibration_summary
    from leukoscope.evaluate.metrics import compute_metrics

    card = ens.card
    known = bool(table["subject_known"].all())
    subjects = table["subject"].to_numpy(str) if known else None
    labels = table["label"].to_numpy(str)
    m = compute_metrics(labels, probs, card.class_names, card.threshold, subjects, card.positive_class)
    m["calibration"] = calibration_summary(y, probs, card.positive_index)
    m["members"] = [
        {"run": mem.path, "weighted_f1": _member_f1(labels, p, mem.card, card.class_names)}
        for mem, p in zip(ens.members, member_probs, strict=True)
    ]
    if bootstrap:
        m["bootstrap"] = bootstrap_ci(
            y,
            probs,
            subjects,
            n_boot=bootstrap,
            seed=seed,
            threshold=card.threshold,
            positive_index=card.positive_index,
        )
    return m | {"split": "val", "subject_known": known, "objective": objective, "notes": list(ens.spec.notes)}


def _member_f1(labels: np.ndarray, probs: np.ndarray, card: ModelCard, class_names: list[str]) -> float:
    """A member scored with its own decision threshold (its probabilities are in the ensemble's order)."""
    from leukoscope.evaluate.metrics import compute_metrics

    return compute_metrics(labels, probs, class_names, card.threshold, None, card.positive_class)[
        "weighted_f1"
    ]


def _write_ensemble_report(
    out: Path, ens: Ensemble, summary: dict[str, Any], table: Any, y: np.ndarray, probs: np.ndarray
) -> Path:
    from leukoscope.evaluate.metrics import decide
    from leukoscope.evaluate.plots import evaluation_figures
    from leukoscope.evaluate.report import UNKNOWN_SUBJECTS, confident_errors, write_report

    card = ens.card
    figures = evaluation_figures(
        out / "plots", y, probs, card.class_names, card.positive_class, card.threshold, "ensemble (val)"
    )
    pred = decide(probs, card.threshold, card.positive_index)
    errors = confident_errors(list(table["path"]), y, probs, card.class_names, pred)
    notes = [
        f"Ensemble method {ens.spec.method}; weights and threshold were fitted on this validation set, "
        "so its scores here are optimistic: evaluate the spec on a test set.",
        *ens.spec.notes,
    ]
    if not summary["subject_known"]:
        notes.append(UNKNOWN_SUBJECTS)
    tables = {"Members": summary["members"]}
    if "bootstrap" in summary:
        tables["Subject-level bootstrap"] = [{"metric": k, **v} for k, v in summary["bootstrap"].items()]
    shown = {k: v for k, v in summary.items() if k not in ("members", "bootstrap", "notes", "per_subject")}
    return write_report(out, shown, figures, errors, "Ensemble (validation)", tables, notes)
