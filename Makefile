# LeukoScope: `make demo` runs the main job, `make test` runs the tests. Both install into .venv first
# (idempotent: a stamp file remembers what was installed for which pyproject.toml).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.leukoscope-installed
# TensorFlow build: the CUDA wheels where an NVIDIA GPU answers, else the CPU build (override: TF=cpu|gpu)
TF ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)

.PHONY: install demo test bench bench-train lint browser clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev,$(TF)]'  # TensorFlow, Keras 3, Snakemake 9 + the SLURM plugin, ...
	@touch $@

demo: install
	$(VENV)/bin/leukoscope demo --out demo-output

# Headless Chromium for the end-to-end browser test (Debian's package, never a browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "note: could not install chromium; the browser test will be skipped"; }

# A one-node SLURM on localhost for the cluster-profile test (Debian's packages, idempotent).
slurm:
	@scripts/slurm-local.sh install 2>/dev/null \
		|| echo "note: could not install Debian's SLURM packages; the SLURM tests will be skipped"

# two workers, one test file each at a time: the long workflow runs (SLURM, kill -9, the whole chain)
# spend much of their time waiting on subprocesses, so they overlap with the rest
test: install browser slurm
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15

lint: install
	$(VENV)/bin/ruff check src tests benchmarks workflow scripts
	$(VENV)/bin/ruff format --check src tests benchmarks workflow scripts
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules/*.smk
	$(VENV)/bin/snakemake --lint

bench: install
	$(PY) benchmarks/run.py

bench-train: install
	$(PY) benchmarks/run.py --only train-paper

clean:
	rm -rf demo-output .pytest_cache .ruff_cache
