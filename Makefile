# DiffVERI + VehicleMAE. `make demo` runs the main job on the toy world; `make test` runs the tests.
# Every target runs through `python -m data_manifests.runtime`, the one place that sets the offline environment
# (HF hub, transformers, ultralytics, Prefect telemetry, project-local PREFECT_HOME and YOLO_CONFIG_DIR).

PYTHON ?= python3.11
VENV   ?= .venv
DATA   ?= data/toy
PY      = $(VENV)/bin/python
RUN     = $(PY) -m data_manifests.runtime --
STAMP   = $(VENV)/.installed

.PHONY: setup test test-all demo toy-models bench lint clean prefect-up prefect-down reproduce-toy

setup: $(STAMP)

# Re-installs only when the project metadata or the pins change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,trackers]"
	@touch $(STAMP)

test: setup
	$(RUN) $(PY) -m pytest -q

test-all: setup
	$(RUN) $(PY) -m pytest -q -m "slow or not slow"

demo: setup
	$(RUN) bash scripts/demo.sh $(DATA)

# The demo's trained toy detector and view SAM (committed in models/toy/; about 25 min on 2 idle cores).
# Training world and runs in data/toy-models/ (TOY_MODELS_ARGS=--reuse keeps a model trained there); docs/pipeline.md.
toy-models: setup
	$(RUN) $(VENV)/bin/diffveri toy models --work data/toy-models --out models/toy $(TOY_MODELS_ARGS)

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(RUN) $(PY) $$b || exit 1; done

# The configured Prefect API (PREFECT_API_URL, or the project profile of prefect.toml), else a local server on
# 127.0.0.1:$(PREFECT_PORT); work pool, `prefect deploy --all` (prefect.yaml), one worker. docs/flows.md.
prefect-up: setup
	$(RUN) $(PY) -m flows.server up --data $(DATA)

prefect-down: setup
	$(RUN) $(PY) -m flows.server down

# PROFILE=quick (1 seed, <= 30 min) | full (3 seeds, <= 4 h); CONDITIONS=mae,vehiclemae / PROTOCOLS=... run a subset.
PROFILE ?= quick
reproduce-toy: setup
	$(RUN) $(PY) scripts/reproduce_toy.py --profile $(PROFILE) $(if $(CONDITIONS),--conditions $(CONDITIONS)) \
	  $(if $(PROTOCOLS),--protocols $(PROTOCOLS))
	$(RUN) $(PY) scripts/results_tables.py runs/reproduce-toy-$(PROFILE)/results.json

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf .state data/toy .pytest_cache
