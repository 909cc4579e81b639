"""Stage 4: Keras training. `fit(RunConfig)` / `fit_inputs(FitInputs, ...)` in `leukoscope.train.fit`
(`FitInputs`, what a job reads, in `leukoscope.train.inputs`; the tf.data stream over it in
`leukoscope.train.tfdata`).

Nothing is imported here, so `leukoscope --help` does not pay TensorFlow's import time; note that
`leukoscope.train.fit` is the module and `leukoscope.train.fit.fit` the function.
"""
