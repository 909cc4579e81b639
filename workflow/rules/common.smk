# What the rules share: the checked config, the machine's GPU pool and threads, wildcard constraints and
# the input functions (paths are written out in the rules; these only fill in the grid).
from leukoscope.workflow import machine, plan

ENV = "../../envs/leukoscope.yaml"
CFG = plan.checked_config(workflow, config)  # validated once; a bad key is one line, before any job
MACHINE = machine.prepare(workflow, CFG)  # stale run locks and the GPU pool: see its docstring
MODELS = plan.models(CFG)  # "backbone/loss" of every grid cell
BACKBONES = [b.lower() for b in CFG.grid.backbones]
SEEDS = CFG.grid.seeds
START_WEIGHTS = plan.start_weights(CFG)  # a model file model.weights names, else None
MODEL_DIR = "results/{scope}models/{model}/seed_{seed}"


wildcard_constraints:
    **plan.WILDCARDS,


def shown(path, caption, subcategory=None, **labels):
    """An output that goes into `snakemake --report`: its caption file, its category from its folder."""
    folder = os.path.basename(os.path.dirname(path))
    category = {"tables": "Tables", "figures": "Figures"}.get(folder, "Training curves")
    return report(path, f"../report/{caption}.rst", category, subcategory, labels=labels)


def crop_files(part, name="crop"):
    """A crop part's two files, as the inputs `{name}_images` and `{name}_index`."""
    return {f"{name}_images": f"results/crop/{part}.npy", f"{name}_index": f"results/crop/{part}.parquet"}


def train_inputs(wildcards):
    """The augmented set, its statistics, the validation crops (+ the weights it starts from)."""
    scope = wildcards.scope
    inputs = {
        "shards": expand(rules.augment.output.shards, scope=scope),
        "index": f"results/{scope}augment/index.parquet",
        "stats": f"results/{scope}stats/stats.json",
        "summary": rules.samples.output.summary,
        **crop_files(plan.part(CFG, "val"), "val"),
    }
    if CFG.uses_imagenet():
        inputs["weights"] = f"resources/weights/{wildcards.backbone}.json"
    elif START_WEIGHTS:
        inputs["start_weights"] = START_WEIGHTS
    return inputs


def predict_inputs(wildcards):
    """The model (one seed's) and the crops of every part it predicts."""
    folder = MODEL_DIR.format(model=f"{wildcards.backbone}/{wildcards.loss}", **wildcards)
    inputs = {"model": f"{folder}/model.keras", "card": f"{folder}/model_card.json"}
    for part in plan.predict_parts(CFG):
        inputs |= crop_files(part, part)
    return inputs


def seed_files(scope, model, name="predictions.parquet"):
    """One file of each seed's model folder of a "backbone/loss"."""
    return [f"{MODEL_DIR.format(scope=scope, model=model, seed=s)}/{name}" for s in SEEDS]


def seed_predictions(wildcards):
    """evaluate: the per-seed tables of a backbone x loss (scored too); none for the ensemble."""
    model = wildcards.model.removeprefix("models/")
    return [] if model == "ensemble" else seed_files(wildcards.scope, model)


def predictions(scope="", ensemble=True):
    """{model: seed-averaged predictions} of every grid cell (and the ensemble's)."""
    files = {m: f"results/{scope}models/{m}/predictions.parquet" for m in MODELS}
    return files | ({"ensemble": f"results/{scope}ensemble/predictions.parquet"} if ensemble else {})


def scores(scope, split, ensemble=True):
    """{model: eval json} of every grid cell (and the ensemble) on one split."""
    files = {m: f"results/{scope}models/{m}/eval/{split}.json" for m in MODELS}
    return files | ({"ensemble": f"results/{scope}ensemble/eval/{split}.json"} if ensemble else {})


def files_in(tree):
    """Every path in a nested {name: path, [...] or {...}} (a rule's inputs; params keep the names)."""
    values = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, list) else None
    return [tree] if values is None else [path for value in values for path in files_in(value)]


def member_files(scope):
    """What the ensemble chooses from (validation scores) and averages (per-seed predictions)."""
    return {
        "val": scores(scope, "val", ensemble=False),
        "predictions": {m: seed_files(scope, m) for m in MODELS},
    }
