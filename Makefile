# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# MLflow's virtualenv env manager (the default of `mlflow run`) needs pyenv, which lives here.
# Podman's network helper runs iptables from /usr/sbin, which a minimal PATH (cron, `env -i`,
# an orchestrator's) leaves out: the docker tests' image build failed with "netavark: No such file".
export PATH := $(BIN):$(HOME)/.pyenv/bin:$(HOME)/.pyenv/shims:$(PATH):/usr/sbin:/sbin
EXPERIMENT ?= tabular-pipeline
MODEL_NAME ?= breast-cancer-classifier
# Where runs go: TRACKING_URI, else MLFLOW_TRACKING_URI, else a SQLite file in this folder. The
# recipes read it as a quoted shell variable and are not echoed, so a password in it is never
# printed, and characters such as & ; $ in it reach MLflow unchanged.
export TRACKING_URI
STORE := "$${TRACKING_URI:-$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}}"
MODEL_URI ?= models:/$(MODEL_NAME)@production
PORT ?= 5001
UI_PORT ?= 5000

.PHONY: install browser run serve ui test lint format bench bench-automl bench-spark bench-monitoring clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

# The main pipeline on the bundled sample: download -> process -> train_basic (LightGBM) -> register.
# Its links point at `make ui` on UI_PORT (TABULAR_PIPELINE_UI_PORT for runs outside make).
run: install
	@MLFLOW_TRACKING_URI=$(STORE) TABULAR_PIPELINE_UI_PORT=$(UI_PORT) $(BIN)/mlflow run . --env-manager local \
		--experiment-name $(EXPERIMENT) -P model_name=$(MODEL_NAME) $(ARGS)

# Headless Chromium, for the tests that look at the MLflow UI and the model card (Debian's package).
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium for the browser checks"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Containers for the Docker tests where no Docker engine answers (CI's machines): podman as `docker`,
# podman-compose, their settings and a stand-in python base image, once per machine; nothing where
# Docker runs. What it installs and why: deploy/docker-setup.sh and docs/serving.md.
.PHONY: docker-setup
docker-setup: install
	@bash deploy/docker-setup.sh $(BIN)/python

# Serve a registered model over HTTP (POST /invocations), from this folder's environment (without
# MLflow's per-file progress bars while it fetches the model).
serve: install
	@MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false MLFLOW_TRACKING_URI=$(STORE) $(BIN)/mlflow models serve -m $(MODEL_URI) --port $(PORT) --env-manager local

# The MLflow UI over this folder's runs (or any store given as TRACKING_URI). MLflow 3.17's server
# imports a Starlette module Starlette deprecates; each worker would print that warning.
ui: install
	@PYTHONWARNINGS="ignore:starlette.middleware.wsgi is deprecated" \
		$(BIN)/mlflow ui --backend-store-uri $(STORE) --port $(UI_PORT)

# Lint first (seconds), then two workers, one test file each at a time (module fixtures such as
# the bad-input battery run once); e2e files are handed out first (tests/conftest.py).
TEST_WORKERS ?= 2
test: install lint browser docker-setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Benchmarks (not tests): writes bench/RESULTS.md. BENCH_ARGS="--quick" for a tiny smoke run.
bench: install
	$(BIN)/python -m bench.run_benchmarks $(BENCH_ARGS)

# FLAML against AutoGluon at 60 s and 300 s on three generated tables (about 45 minutes on 2 cores):
# appends to bench/automl_tools.jsonl, then prints the tables bench/RESULTS.md quotes.
bench-automl: install
	$(BIN)/python -m bench.automl_tools --budgets 60,300 --output bench/automl_tools.jsonl $(BENCH_ARGS)
	$(BIN)/python -m bench.automl_tools --report --output bench/automl_tools.jsonl

# main on both engines at 1M rows on a local[*] session (the issue's measure, three repeats), then
# at 1M and 3M rows and Spark alone at 10M on a standalone cluster it starts on loopback (about 20
# minutes on 2 cores): appends to bench/spark_scaling.jsonl, then prints the table and draws
# bench/spark_scaling.png for bench/RESULTS.md.
bench-spark: install
	$(BIN)/python -m bench.spark_scaling --rows 1000000 --engines pandas,spark --master 'local[*]' --repeats 3 --output bench/spark_scaling.jsonl
	$(BIN)/python -m bench.spark_scaling --rows 1000000,3000000 --engines pandas,spark --output bench/spark_scaling.jsonl
	$(BIN)/python -m bench.spark_scaling --rows 10000000 --engines spark --output bench/spark_scaling.jsonl
	$(BIN)/python -m bench.spark_scaling --report --output bench/spark_scaling.jsonl

# Scoring a million labelled rows on both engines without monitoring, with drift counts, and with
# realized and estimated performance too (about 30 minutes on 2 cores): appends to
# bench/monitoring_cost.jsonl, then prints the table bench/RESULTS.md quotes.
bench-monitoring: install
	$(BIN)/python -m bench.monitoring_cost --rows 1000000 --repeats 3 --engines pandas,spark | tee -a bench/monitoring_cost.jsonl
	$(BIN)/python -m bench.monitoring_cost --report bench/monitoring_cost.jsonl

clean:
	rm -rf mlflow.db mlruns mlartifacts .pytest_cache
