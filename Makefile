# Two commands do everything on a fresh machine with Python 3.11 and pip:
#   make demo   set up .venv and run the main job on the embedded default data
#   make test   set up .venv and run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) benchmarks/sampler_accuracy.py

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not gpu" -q

lint: $(STAMP)
	$(VENV)/bin/ruff check sigdiff cli datasets tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
