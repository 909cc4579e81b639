"""Stage 4: Keras training. `fit(RunConfig)` / `fit_inputs(FitInputs, ...)` in `leukoscope.train.fit`
(`FitInputs`, what a job reads, in `leukoscope.train.inputs`).

Nothing is imported here, so `leukoscope --help` does not pay TensorFlow's import time; note that
`leukoscope.train.fit` is the module and `leukoscope.train.fit.fit` the function.
"""
