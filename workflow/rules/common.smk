# What the rules share: the checked config, the machine's GPU pool and threads, wildcard constraints and
# the input functions (paths are written out in the rules; these only fill in the grid).
from leukoscope.workflow import machine, plan

ENV = "../../envs/leukoscope.yaml"
# validated once; a bad key is one line, before any job
CFG = plan.checked_config(workflow, config)
# stale run locks and the GPU pool: the one place parsing touches the machine (see its docstring)
MACHINE = machine.prepare(workflow, CFG)
MODELS = plan.models(CFG)  # "backbone/loss" of every grid cell
BACKBONES = list(dict.fromkeys(m.split("/")[0] for m in MODELS))
SEEDS = CFG.grid.seeds
START_WEIGHTS = plan.start_weights(
    CFG
)  # a model file train.weights names (checked once), else None
MODEL_DIR = "results/{scope}models/{model}/seed_{seed}"


wildcard_constraints:
    **plan.WILDCARDS,


def shown(path, caption, subcategory=None, **labels):
    """An output that goes into `snakemake --report`: its caption file, its category from its folder."""
    folder = os.path.basename(os.path.dirname(path))
    category = {"tables": "Tables", "figures": "Figures"}.get(folder, "Training curves")
    return report(
        path, f"../report/{caption}.rst", category, subcategory, labels=labels
    )


def crop_files(part):
    return {
        "crop_images": f"results/crop/{part}.npy",
        "crop_index": f"results/crop/{part}.parquet",
    }


def train_inputs(wildcards):
    """The augmented set, its statistics, the validation crops (+ the weights it starts from)."""
    scope, val = wildcards.scope, plan.val_part(CFG)
    inputs = {
        "shards": expand(rules.augment.output.shards, scope=scope),
        "index": f"results/{scope}augment/index.parquet",
        "stats": f"results/{scope}stats/stats.json",
        "summary": rules.samples.output.summary,
        "val_images": f"results/crop/{val}.npy",
        "val_index": f"results/crop/{val}.parquet",
    }
    if CFG.uses_imagenet():
        inputs["weights"] = f"resources/weights/{wildcards.backbone}.json"
    elif START_WEIGHTS:
        inputs["start_weights"] = START_WEIGHTS
    return inputs


def predict_inputs(wildcards):
    folder = MODEL_DIR.format(
        model=f"{wildcards.backbone}/{wildcards.loss}", **wildcards
    )
    inputs = {"model": f"{folder}/model.keras", "card": f"{folder}/model_card.json"}
    for part in plan.predict_parts(CFG):
        inputs |= {
            f"{part}_images": f"results/crop/{part}.npy",
            f"{part}_index": f"results/crop/{part}.parquet",
        }
    return inputs


def seed_files(scope, model, name="predictions.parquet"):
    """One file of each seed's model folder of a "backbone/loss"."""
    return [
        f"{MODEL_DIR.format(scope=scope, model=model, seed=s)}/{name}" for s in SEEDS
    ]


def seed_predictions(wildcards):
    """evaluate: the per-seed tables of a backbone x loss (scored too); none for the ensemble."""
    model = wildcards.model.removeprefix("models/")
    return [] if model == "ensemble" else seed_files(wildcards.scope, model)


def predictions(scope=""):
    """{model: seed-averaged predictions} of every grid cell, and the ensemble's."""
    files = {m: f"results/{scope}models/{m}/predictions.parquet" for m in MODELS}
    return files | {"ensemble": f"results/{scope}ensemble/predictions.parquet"}


def scores(scope, split):
    """{model: eval json} of every grid cell and the ensemble on one split."""
    return {
        m: f"results/{scope}{'' if m == 'ensemble' else 'models/'}{m}/eval/{split}.json"
        for m in predictions(scope)
    }


def member_files(scope):
    """What the ensemble chooses from (validation scores) and averages (per-seed predictions)."""
    val = scores(scope, "val")
    val.pop("ensemble")
    return {"val": val, "predictions": {m: seed_files(scope, m) for m in MODELS}}


def files_in(tree):
    """Every path in a nested {name: path, [...] or {...}} (a rule's inputs; params keep the names)."""
    if isinstance(tree, dict):
        return [path for value in tree.values() for path in files_in(value)]
    if isinstance(tree, list):
        return [path for value in tree for path in files_in(value)]
    return [tree]


def paper_scores():
    """{split: {model: eval json}} of the paper / heldout chain."""
    return {split: scores("", split) for split in CFG.eval_splits}


def first_seed_dirs():
    return {m: MODEL_DIR.format(scope="", model=m, seed=SEEDS[0]) for m in MODELS}


def scored_crops():
    """The crop files of the split the report is on (paper: val; heldout: test), for Grad-CAM."""
    split = CFG.scored_split
    return {
        split: {
            "index": f"results/crop/{split}.parquet",
            "images": f"results/crop/{split}.npy",
        }
    }


def cv_scores():
    """{fold: {model: outer-fold (test) eval json}} of every cv chain."""
    return {plan.fold_of(scope): scores(scope, "test") for scope in CFG.scopes}
