# The README's first two commands: `make demo` (main job on built-in data) and `make test` (lint, then pytest).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.converse-installed
LINT_PATHS := converse_basicsr scripts tests setup.py

.PHONY: demo test lint format env clean

env: $(STAMP)

# Create the virtual environment once and reuse it; torch/torchvision pinned to the wheels on this disk.
# Reinstalled when setup.py changes (new dependencies, extras or console scripts). setuptools in the venv
# itself: tests/cli/test_packaging.py builds the wheel without build isolation (venvs of Python >= 3.12 lack it).
$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[test,mmengine,export]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

# The lint configuration is setup.cfg's [flake8], [isort] and [yapf] (BasicSR's style, 120 columns).
lint: $(STAMP)
	$(PY) -m flake8 $(LINT_PATHS)
	$(PY) -m isort --check-only --diff $(LINT_PATHS)
	$(PY) -m yapf --diff --recursive $(LINT_PATHS)

# Rewrite the files in place so that `make lint` passes.
format: $(STAMP)
	$(PY) -m isort $(LINT_PATHS)
	$(PY) -m yapf --in-place --recursive $(LINT_PATHS)

test: lint
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) *.egg-info
