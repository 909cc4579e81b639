# Shared by the other .smk files -- the checked config, the GPU pool, wildcard constraints, input functions.
import sys

from snakemake.exceptions import WorkflowError

from leukoscope.errors import LeukoScopeError
from leukoscope.workflow import machine
from leukoscope.workflow import plan as P

ENV = "../../envs/leukoscope.yaml"
# `snakemake --lint` parses the workflow without running it (and without check_envvars): no dataset yet.
LINTING = not getattr(workflow, "check_envvars", True)
MAIN = workflow.is_main_process


def _checked_config():
    """The config, checked once: renamed keys read (a notice each), the schema (defaults filled), then
    the data; any problem is one line."""
    notices = []
    try:
        cfg = P.load(
            config,
            source=", ".join(map(str, workflow.configfiles)) or "config",
            check_data=MAIN and not LINTING,
            notices=notices,
        )
    except LeukoScopeError as exc:
        raise WorkflowError(exc.one_line()) from None
    for notice in notices if MAIN else []:
        print(notice, file=sys.stderr)
    return cfg


CFG = _checked_config()
# No dataset yet: a dry run still plans every job, then says where the data go (after the plan); a real
# run stops in `onstart` (before_first_job), before any job.
if MAIN and not LINTING and P.missing_data_note(CFG):
    P.note_at_exit(P.missing_data_note(CFG))
MODELS = P.models(CFG)
SCOPES = CFG.scopes

# Besides reading the config, parsing touches the machine in one place: PYTHONPATH for the jobs, stale
# run locks, the GPU pool (leukoscope.workflow.machine).
try:
    MACHINE = machine.prepare(workflow, CFG, main=MAIN and not LINTING)
except LeukoScopeError as exc:
    raise WorkflowError(exc.one_line()) from None
GPU_PER_JOB, TRAIN_THREADS = MACHINE.gpu_per_job, MACHINE.threads


wildcard_constraints:
    **P.WILDCARDS,


def log_file(name):
    return P.LOG.format(name=name)


def crop_of(part):
    return {
        "crop_images": P.CROP.format(part=part),
        "crop_index": P.CROP_INDEX.format(part=part),
    }


def train_inputs(wildcards):
    """What one training job reads: the augmented set, its statistics, validation crops (+ weights)."""
    scope = wildcards.scope
    inputs = {
        "shards": P.shards(CFG, scope),
        "index": P.AUGMENT_INDEX.format(scope=scope),
        "stats": P.STATS.format(scope=scope),
        "summary": P.SAMPLES_SUMMARY,
        "val_images": P.CROP.format(part=P.val_part(CFG)),
        "val_index": P.CROP_INDEX.format(part=P.val_part(CFG)),
    }
    if CFG.uses_imagenet():
        inputs["weights"] = P.WEIGHTS_RECORD.format(backbone=wildcards.backbone)
    elif P.start_weights(CFG):
        inputs["start_weights"] = P.start_weights(CFG)
    return inputs


def predict_inputs(wildcards):
    model = P.model_dir(
        wildcards.scope, wildcards.backbone, wildcards.loss, wildcards.seed
    )
    inputs = {"model": f"{model}/model.keras", "card": f"{model}/model_card.json"}
    for part in P.predict_parts(CFG):
        inputs[f"{part}_images"] = P.CROP.format(part=part)
        inputs[f"{part}_index"] = P.CROP_INDEX.format(part=part)
    return inputs


def seed_predictions(wildcards):
    """The per-seed prediction tables of one backbone x loss (evaluate scores each seed too)."""
    if not wildcards.model.startswith("models/"):
        return []
    _, backbone, loss = wildcards.model.split("/")
    return P.seed_prediction_files(CFG, wildcards.scope, backbone, loss)


def scope_evals(scope, split):
    return P.eval_files(CFG, scope, split)


def member_files(scope):
    """Validation scores and per-seed predictions of every model of a scope: what the ensemble chooses
    from and averages."""
    return {
        "val": {m: p for m, p in scope_evals(scope, "val").items() if m != "ensemble"},
        "predictions": {
            f"{b}/{l}": P.seed_prediction_files(CFG, scope, b, l) for b, l in MODELS
        },
    }


def nested_files(tree):
    """Every path in a nested {name: path or {...}} mapping (the rule's inputs; params keep the names)."""
    if isinstance(tree, dict):
        return [path for value in tree.values() for path in nested_files(value)]
    if isinstance(tree, list):
        return [path for value in tree for path in nested_files(value)]
    return [tree]


BACKBONES = list(dict.fromkeys(b for b, _ in MODELS))


def paper_scores():
    """{split: {model: eval json}} of the paper / heldout chain."""
    return {split: scope_evals("", split) for split in CFG.eval_splits}


def model_predictions():
    """{model: seed-averaged predictions} of the paper / heldout chain, and the ensemble's."""
    return {
        **{
            f"{b}/{l}": P.PREDICTIONS.format(scope="", model=f"models/{b}/{l}")
            for b, l in MODELS
        },
        "ensemble": P.PREDICTIONS.format(scope="", model="ensemble"),
    }


def scored_crops():
    """The crop files of the split the report is on (paper: val; heldout: test), for Grad-CAM."""
    split = CFG.scored_split
    return {
        split: {
            "index": P.CROP_INDEX.format(part=split),
            "images": P.CROP.format(part=split),
        }
    }


def figure_inputs():
    return {
        "scores": paper_scores(),
        "histories": {
            f"{b}/{l}": P.model_file("history.csv", "", b, l, CFG.grid.seeds[0])
            for b, l in MODELS
        },
        "predictions": model_predictions(),
    }


def cv_scores():
    """{fold: {model: outer-fold (test) eval json}} of every cv chain."""
    return {P.fold_of(scope): scope_evals(scope, "test") for scope in SCOPES}


def before_first_job():
    """Checks that need Keras (~5 s to import: backbone and loss names) or the data (when it was not
    there at parse time), run once when a real run starts."""
    try:
        P.started(CFG)
    except LeukoScopeError as exc:
        raise WorkflowError(exc.one_line()) from None
