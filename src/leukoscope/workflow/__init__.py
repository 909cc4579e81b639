"""The Snakemake workflow's side of the engine: its typed config, schema, GPU pool, and the runner.

The Snakefile at the repository root and `workflow/scripts/*.py` are thin: every decision a rule makes
(which files, which settings, which GPU) is a function here, so it is typed, tested, and shared with
`leukoscope demo`.
"""
