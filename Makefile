# The two quick-start commands are `make demo` and `make test`. Each creates or reuses .venv,
# installs what is missing (a stamp file makes a second run instant), then runs.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP_BASE := $(VENV)/.stamp-base
STAMP_DEV := $(VENV)/.stamp-dev
export MPLCONFIGDIR ?= $(CURDIR)/.venv/mplconfig
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-slow lint bench validate setup setup-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: it resolves to the CPU wheel on CPU machines (see docs/development.md).
$(STAMP_BASE): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	@touch $@

# Tests also exercise the Pluto path through the real pyadi-iio/libiio stack, so they need the
# system libiio (Debian libiio0 0.24) and the `sdr` extra.
$(STAMP_DEV): $(STAMP_BASE) scripts/setup-system.sh
	bash scripts/setup-system.sh
	$(BIN)/pip install -q -e ".[dev,sdr,ray,fast]"
	@touch $@

setup: $(STAMP_BASE)
setup-dev: $(STAMP_DEV)

demo: $(STAMP_BASE)
	$(BIN)/meg-phy demo --out runs/demo

test: $(STAMP_DEV)
	$(BIN)/python -m pytest -m "not slow and not hardware" -q

test-slow: $(STAMP_DEV)
	$(BIN)/python -m pytest -m slow -q

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: $(STAMP_DEV)
	$(BIN)/python -m benchmarks --out runs/bench

validate: $(STAMP_DEV)
	$(BIN)/python scripts/validate_links.py --out docs/figures

clean:
	rm -rf $(VENV) runs .pytest_cache
