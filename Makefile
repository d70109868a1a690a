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

# The main job: embedded ECG5000 -> train/holdout split -> training with the paper's timestep
# sampler (emphasis on small t, the low-noise end) -> samples -> memorization/alignment verdict.
DEMO ?= runs/demo
SIGDIFF := $(VENV)/bin/sigdiff
demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(SIGDIFF) data make ecg5000 --out $(DEMO)/ecg5000.zarr
	$(SIGDIFF) data split $(DEMO)/ecg5000.zarr --holdout 0.2 --seed 0 \
		--out-train $(DEMO)/train.zarr --out-holdout $(DEMO)/holdout.zarr
	$(SIGDIFF) train --data $(DEMO)/train.zarr --out $(DEMO)/run --preset small \
		--sampler ci_gaussian --param center=0.2 --param width=0.3
	$(SIGDIFF) sample --run $(DEMO)/run --n 400 --out $(DEMO)/samples.zarr --sampler dpmpp_2m --steps 50
	$(SIGDIFF) eval --train $(DEMO)/train.zarr --holdout $(DEMO)/holdout.zarr \
		--samples $(DEMO)/samples.zarr --out $(DEMO)/report

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not gpu" -q

lint: $(STAMP)
	$(VENV)/bin/ruff check sigdiff cli datasets tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
