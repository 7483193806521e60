# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
# MLflow's virtualenv env manager (the default of `mlflow run`) needs pyenv, which lives here.
export PATH := $(BIN):$(HOME)/.pyenv/bin:$(HOME)/.pyenv/shims:$(PATH)
EXPERIMENT ?= tabular-pipeline
MODEL_NAME ?= breast-cancer-classifier

.PHONY: install run test bench lint clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

# The main pipeline on the bundled sample: download -> process -> train_basic (LightGBM) -> register.
# With MLFLOW_TRACKING_URI unset, MLflow stores runs in ./mlflow.db and artifacts in ./mlruns.
run: install
	$(BIN)/mlflow run . --env-manager local --experiment-name $(EXPERIMENT) -P model_name=$(MODEL_NAME) $(ARGS)

# Two workers, one test file each at a time (module fixtures such as the bad-input battery run
# once); e2e files are handed out first (tests/conftest.py) so the short unit files fill the end.
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# Benchmarks (not tests): writes bench/RESULTS.md. BENCH_ARGS="--quick" for a tiny smoke run.
bench: install
	$(BIN)/python -m bench.run_benchmarks $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf mlflow.db mlruns mlartifacts .pytest_cache
