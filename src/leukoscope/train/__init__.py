"""Stage 4: Lightning datamodule + module, `fit(RunConfig)` (in `leukoscope.train.fit`), the run directory.

Nothing is imported here, so `leukoscope --help` does not pay Lightning's import time; note that
`leukoscope.train.fit` is the module and `leukoscope.train.fit.fit` the function.
"""
