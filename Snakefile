# LeukoScope: the C-NMC 2019 focal-hinge-loss paper as a workflow. The default target regenerates its
# tables and figures from config.yaml (always the base; --configfile / --config files override it):
#   snakemake --cores all                      (profiles/default is loaded automatically)
#   snakemake --report results/report.html     (a self-contained report of the run)
# What lands where: results/README.md. The rules call the `leukoscope` package (src/leukoscope).
import os

from snakemake.utils import min_version

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


onstart:
    plan.started(CFG)  # the data and the names (Keras), once, before the first job


rule all:
    """The paper's Tables 1-3 and figures, the per-subject table, Grad-CAM panels, the ensemble and the
    challenge submission (protocol paper / heldout), or the cross-validation summary (cv); with the data
    check and the resolved config."""
    default_target: True
    input:
        config=rules.resolved_config.output,
        data_check=rules.samples.output.check,
        products=branch(
            CFG.protocol == "cv",
            then=rules.cv_summary.output,
            otherwise=[
                rules.tables.output,
                rules.figures.output,
                rules.subjects.output,
                rules.gradcam.output,
                rules.ensemble.output.spec.format(scope=""),
                rules.submission.output,
            ],
        ),
