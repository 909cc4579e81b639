"""Rule `samples`: the sample sheet (parquet), its summary, and the data check report of the dataset.

The first rule that decodes every image, so it is where unreadable files stop a run (listed; with
`dataset.skip_unreadable: true` they are left out instead), where `preprocess.crop: auto` is resolved
from the images' background, and where `augment.target` is resolved against the data's classes for
datasets the Snakefile could not read at parse time (downloads).
"""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    from leukoscope._io import atomic_path, write_json
    from leukoscope.data.check import check_dataset
    from leukoscope.data.samples import build_sample_sheet
    from leukoscope.preprocess.artifacts import resolve_stage_settings

    record = json.loads(Path(smk.input.dataset).read_text(encoding="utf-8"))
    path = Path(record["path"])
    s = dict(smk.params.settings)
    sheet = build_sample_sheet(
        path,
        protocol=s["protocol"],
        folds=s["folds"],
        val_fold=s["val_fold"],
        val_fraction=s["val_fraction"],
        inner_fraction=s["inner_fraction"],
        classes=s["classes"],
        positive_class=s["positive_class"],
        limit_per_class=s["limit_per_class"],
        seed=s["seed"],
    )
    report = check_dataset(path, verify_checksums=bool(s["verify"]), workers=smk.threads)
    write_json(smk.output.check, report.to_dict())  # kept even when the run stops here: it lists the files
    unreadable = {p["path"] for p in report.problems if p["kind"] == "unreadable"}
    notes = sheet.drop_unreadable(unreadable, bool(s["skip_unreadable"]), smk.output.check)
    resolved = resolve_stage_settings(sheet, dict(smk.params.augment), s["crop"], s["black_threshold"])
    with atomic_path(smk.output.sheet) as tmp:
        sheet.frame.to_parquet(tmp, index=False)
    summary = (
        sheet.summary()
        | resolved
        | {
            "data_check": {"problems": report.problem_counts(), "usable": report.usable},
        }
    )
    summary["notes"] = [*summary["notes"], *notes]
    write_json(smk.output.summary, summary)
    counts = {k: v["images"] for k, v in summary["parts"].items()}
    print(f"samples: {counts}, classes {sheet.class_names}; {'; '.join(summary['notes'])}")
    print(f"crop: {resolved['preprocess']['crop']} ({resolved['preprocess']['reason']})")
    print(f"augment target: {resolved['augment']['target']} ({resolved['augment']['reason']})")


run(snakemake, main)  # noqa: F821
