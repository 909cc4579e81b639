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
    before_first_job()


rule all:
    default_target: True
    input:
        P.targets(CFG),
