#!/usr/bin/env bash
# The GPU benchmark, for a machine with a GPU (< 8 minutes): this project's classifier + focal hinge
# loss training on the GPU alone (EfficientNetB2 float32 and bf16, DenseNet201 float32), 2 and 3
# EfficientNetB2 jobs sharing it (train.jobs_per_gpu), predict speed, whether the input pipeline keeps
# up, the Table 2 grid's hours on one GPU and on ten.
#   benchmarks/gpu.sh                     # writes benchmarks/results/gpu.json + the README table
#   KERAS_BACKEND=jax benchmarks/gpu.sh   # where TensorFlow is absent: Keras + JAX with CUDA suffice
#   benchmarks/gpu.sh --dry-run           # every code path on the CPU, tiny sizes, results in benchmarks/work/
#   benchmarks/gpu.sh --out DIR --work DIR
#   GPU_BENCH_BUDGET_S=300 benchmarks/gpu.sh   # a shorter budget (default 430 s): what no longer fits is skipped
# Needs no network and no data: batches are drawn in memory. Python: $PYTHON, else the repository's .venv,
# else python3, with Keras 3 on its backend (TensorFlow, or JAX), NumPy and PyYAML; TensorFlow, OpenCV
# and pandas only for the input-pipeline figures (skipped, with the reason, without them).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python3
fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
backend=${KERAS_BACKEND:-tensorflow}
if ! "$PY" -c "import keras, numpy, yaml" 2>/dev/null; then
    echo "error: $PY cannot import Keras on its $backend backend (or NumPy, PyYAML): install them," \
        "or set KERAS_BACKEND=jax where only JAX is installed" >&2
    exit 2
fi
# 470 s in all: the measuring processes keep to a 430 s budget (GPU_BENCH_BUDGET_S) and save after every item
budget=${GPU_BENCH_BUDGET_S:-430}
exec timeout $((${budget%.*} + 40)) "$PY" benchmarks/run.py --only gpu "$@"
