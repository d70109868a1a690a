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

# The main job: on the embedded ECG5000 data (16 beats, 3 seeds), uniform timestep sampling
# against the truncated-Gaussian sampler with its emphasis on large t (centre 0.8, width 0.6,
# 30% uniform floor: the arm pair the fair re-test in docs/results/ecg5000/ supports best): train,
# sample and evaluate at every checkpoint beside the real-data floor, a copier and corrupted real
# data, then print the comparison table and write the report with its plots (8-16 minutes on
# 2 cores after setup, with the shared machine's speed: 16 min measured on 2026-12-01). Rerunning continues or reuses $(DEMO).
DEMO ?= runs/demo
demo: $(STAMP)
	$(VENV)/bin/sigdiff sweep demo --out $(DEMO) --jobs 2

# the tests, after the linters (ruff, mypy): what CI runs
test: lint
	$(PY) -m pytest -m "not slow and not gpu" -q

lint: $(STAMP)
	$(VENV)/bin/ruff check sigdiff cli datasets tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
