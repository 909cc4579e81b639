"""Rule `tables`: Tables 1-3 beside the paper's published numbers (CSV + Markdown), with intervals.

Table 2 is on the chain's scored split (paper: the preliminary test, which also validated; heldout: the
preliminary test, untouched), with each loss's paired weighted-F1 difference from BCE; Table 3 is the
ensemble on the preliminary test. Beside them, where each training job's time went (timing).
"""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def _json(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def main(smk: Any) -> None:
    import pandas as pd

    from leukoscope.evaluate.predictions import class_names_of, paired_differences
    from leukoscope.report import tables as T

    p = smk.params
    summary, choice = _json(smk.input.summary), _json(smk.input.choice)
    by_model: dict[str, dict[str, Any]] = {}
    for split, files in p.scores.items():
        for model, path in files.items():
            by_model.setdefault(model, {})[split] = _json(path)
    augmented = pd.read_parquet(smk.input.augmented)["label"].value_counts().to_dict()
    out, protocol, split = smk.output, summary["protocol"], p.split
    interpretations = T.interpretation_notes(dict(p.loss_settings), protocol)

    t1 = T.table1(summary, {str(k): int(v) for k, v in augmented.items()})
    T.write_table(t1, out.table1_csv, out.table1_md, "Table 1: images per set and class", [
        "Ours: this run's sample sheet (after dropping files identical to one in an earlier split) and "
        "the augment stage's oversampled training set; the paper's: its Table 1 (C-NMC 2019, 73 subjects "
        "in 3 folds; the final test's class counts are the paper's, its labels were never published).",
        f"Augmented: {summary.get('augment', {}).get('reason', '')}.",
        *summary.get("notes", []),
    ])  # fmt: skip

    tables = {m: pd.read_parquet(f) for m, f in p.predictions.items()}
    classes = class_names_of(next(iter(tables.values())))
    differences: dict[str, Any] = {}
    for b in p.backbones:
        if "bce" in p.losses:
            group = {f"{b}/{loss}": tables[f"{b}/{loss}"] for loss in p.losses}
            differences |= paired_differences(
                group, f"{b}/bce", split, classes, p.threshold, summary.get("positive_class"),
                n_boot=int(p.bootstrap), seed=int(p.bootstrap_seed),
            )  # fmt: skip
    t2 = T.table2(by_model, list(p.backbones), list(p.losses), choice["chosen"], split, differences)
    ensemble = by_model["ensemble"].get(split, {})
    notes2 = T.table2_notes(protocol, split, ensemble.get("n", 0), choice["chosen"], p.select,
                            ensemble.get("bootstrap"))  # fmt: skip
    title2 = f"Table 2: weighted F1 (%) per loss and backbone, {T.split_name(protocol, split)}"
    T.write_table(t2, out.table2_csv, out.table2_md, title2, [*notes2, *interpretations])

    prelim = "val" if protocol == "paper" else "test"
    record = by_model["ensemble"].get(prelim, {})
    where = T.split_name(protocol, prelim)
    t3 = T.table3(record, "ours")
    T.write_table(t3, out.table3_csv, out.table3_md, f"Table 3: the ensemble on the {where}", [
        f"n = {record.get('n', 0)}; precision, recall and F1 of the positive class "
        f"({summary.get('positive_class')}), as in the paper (its F1 88.82 = the harmonic mean of 82.73 "
        "and 95.89); the paper's column is on its validation set, the preliminary test.",
        *[n for n in interpretations if n.startswith("Protocol paper")],
    ])  # fmt: skip
    from leukoscope.report.timing import timing_notes, timing_table

    T.write_table(
        timing_table(dict(p.metrics)),
        out.timing_csv,
        out.timing_md,
        "Training time per job: first step (trace / compile) and steady images/s",
        timing_notes(),
    )
    print(T.markdown(t2, title2, []))


run(snakemake, main)  # noqa: F821
