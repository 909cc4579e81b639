#!/usr/bin/env bash
# The GPU benchmark, for a machine with a GPU (< 8 minutes): DenseNet201 / EfficientNetB2 training
# images/s at batch 32 in float32 vs mixed precision, XLA off / on; whether LeukoScope's input pipeline
# keeps up with the GPU; the Table 2 grid's hours projected on one GPU and on ten.
#   benchmarks/gpu.sh                 # writes benchmarks/results/gpu.json + the README table
#   benchmarks/gpu.sh --dry-run       # every code path on the CPU, tiny sizes, results in benchmarks/work/
#   benchmarks/gpu.sh --out DIR       # results (and a README with the table) elsewhere
# Needs no network and no prepared data: synthetic cells are drawn on the spot. Python: $PYTHON, else
# the repository's .venv, else python3 (TensorFlow with CUDA, Keras 3, OpenCV, pandas, pyarrow).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python3
fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
if ! "$PY" -c "import tensorflow, keras, cv2, pandas, pyarrow" 2>/dev/null; then
    echo "error: $PY lacks TensorFlow, Keras, OpenCV, pandas or pyarrow: set PYTHON to an interpreter that has them" >&2
    exit 2
fi
# 470 s in all: the measuring process keeps to its own 400 s deadline and saves after every item
exec timeout 470 "$PY" benchmarks/run.py --only gpu "$@"
