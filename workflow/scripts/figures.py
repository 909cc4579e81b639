"""Rule `figures`: training curves per backbone (the paper's Figs. 3-4), the F1 heat map, confusion
matrices and ROC curves of every model and the ensemble on the scored test split."""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    import pandas as pd

    from leukoscope.report import figures as F
    from leukoscope.report import paper, tables

    files = smk.params.files
    summary = json.loads(Path(smk.input.summary).read_text(encoding="utf-8"))
    backbones, losses = list(smk.params.backbones), list(smk.params.losses)
    scores = {
        split: {m: json.loads(Path(p).read_text(encoding="utf-8")) for m, p in by.items()}
        for split, by in files["scores"].items()
    }
    split = smk.params.split
    where = tables.split_name(summary["protocol"], split)
    out = smk.output
    for b in backbones:
        histories = {loss: pd.read_csv(files["histories"][f"{b}/{loss}"]) for loss in losses}
        F.training_curves(
            histories, out[f"curves_{b}"], f"{paper.BACKBONE_LABELS.get(b, b)}: training curves"
        )
    columns = [paper.BACKBONE_LABELS.get(b, b) for b in backbones]
    rows = [paper.LOSS_LABELS.get(loss, loss) for loss in losses]
    ours = [[_pct(scores[split][f"{b}/{loss}"]) for b in backbones] for loss in losses]
    grid = pd.DataFrame(ours, index=rows, columns=columns)
    published = pd.DataFrame(
        [[paper.published(loss, b).f1 for b in backbones] for loss in losses], index=rows, columns=columns
    )
    title = f"weighted F1 (%): ours on the {where}, the paper's on the final test"
    F.f1_heatmap(grid, out.f1_heatmap, title, published)
    classes = list(summary["class_names"])
    matrices = {m: s["confusion_matrix"] for m, s in scores[split].items() if s.get("n", 0)}
    F.confusion_grid(matrices, classes, out.confusion, f"confusion matrices, {where}")
    tables = {m: pd.read_parquet(p) for m, p in files["predictions"].items()}
    positive = summary.get("positive_class") or classes[-1]
    F.roc_curves(tables, positive, split, out.roc, f"ROC, {where}")


def _pct(record: dict[str, Any]) -> float | None:
    return 100.0 * record["weighted_f1"] if record.get("n", 0) else None


run(snakemake, main)  # noqa: F821
