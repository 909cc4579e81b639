"""Rule `samples`: the sample sheet (parquet), its summary, and the data check report of the dataset."""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    from leukoscope._io import atomic_path, write_json
    from leukoscope.data.check import check_dataset
    from leukoscope.data.samples import build_sample_sheet

    record = json.loads(Path(smk.input.dataset).read_text(encoding="utf-8"))
    path = Path(record["path"])
    s = dict(smk.params.settings)
    sheet = build_sample_sheet(
        path,
        protocol=s["protocol"],
        folds=s["folds"],
        val_fold=s["val_fold"],
        val_fraction=s["val_fraction"],
        classes=s["classes"],
        positive_class=s["positive_class"],
        limit_per_class=s["limit_per_class"],
        seed=s["seed"],
    )
    report = check_dataset(path, verify_checksums=bool(s["verify"]), workers=smk.threads)
    write_json(smk.output.check, report.to_dict())
    with atomic_path(smk.output.sheet) as tmp:
        sheet.frame.to_parquet(tmp, index=False)
    summary = sheet.summary() | {"data_check": {"problems": report.problem_counts(), "usable": report.usable}}
    write_json(smk.output.summary, summary)
    counts = {k: v["images"] for k, v in summary["parts"].items()}
    print(f"samples: {counts}, classes {sheet.class_names}; {'; '.join(sheet.notes)}")


run(snakemake, main)  # noqa: F821
