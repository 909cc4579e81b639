"""Rule `download` (a local rule): put the dataset in place, then write its record.

Every failure the user can fix (unreachable URL, truncated or corrupt download, wrong checksum, missing
credentials) is one line in the log and on the terminal (`leukoscope.workflow.script.run`); the record,
the rule's only declared output, is written last and atomically, so a failed or killed download is never
taken as complete (`leukoscope data fetch` is the same outside the workflow, exit code 2).
"""

import logging
from typing import Any


def main(smk: Any) -> None:
    from leukoscope._io import write_json
    from leukoscope.data.download import DatasetRequest, fetch

    log = logging.getLogger("leukoscope.download")
    record = fetch(DatasetRequest.from_mapping(dict(smk.params.dataset)), progress=_progress(log))
    write_json(smk.output[0], record)
    log.info(
        "%s: %d files, verified: %s", record["path"], record["files"], record["verification"].get("verified")
    )


def _progress(log: logging.Logger) -> Any:
    """Log roughly every 10% (or every 100 MB when the size is unknown)."""
    shown = {"step": -1}

    def report(done: int, total: int | None) -> None:
        step = done * 10 // total if total else done // (100 << 20)
        if step != shown["step"]:
            shown["step"] = step
            log.info("downloaded %s of %s bytes", f"{done:,}", f"{total:,}" if total else "?")

    return report


if "snakemake" in globals():
    from leukoscope.workflow.script import run

    run(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
