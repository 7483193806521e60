"""What the light entry points load just to start: every `mlflow run` pays it once per step. Which
modules load is checked, not how long they take (times belong in bench/)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import PROJECT_DIR

# Libraries a step that only orchestrates, registers or fetches must not load at start-up: each
# costs from a few hundred milliseconds (scipy, scikit-learn) to seconds (pyspark, MLflow's pyfunc).
HEAVY_PACKAGES = {"sklearn", "scipy", "skops", "pyspark", "lightgbm", "xgboost", "flaml", "autogluon", "matplotlib"}


def modules_loaded(*arguments: str) -> set[str]:
    """The modules a fresh `python -X importtime <arguments>` imported (from its own report)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *arguments],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    return set(rows[1:])  # the first row is the report's header


def heavy_among(modules: set[str]) -> list[str]:
    """The heavy libraries among `modules`: `HEAVY_PACKAGES` and MLflow's pyfunc."""
    return sorted(name for name in modules if name.split(".")[0] in HEAVY_PACKAGES or name.startswith("mlflow.pyfunc"))


def test_main_starts_without_mlflow_pandas_or_any_model_library():
    loaded = modules_loaded("-m", "main", "--help")
    assert not heavy_among(loaded), heavy_among(loaded)
    assert not {"mlflow", "pandas", "pyarrow", "numpy"} & loaded, "main only passes URIs between steps"


@pytest.mark.parametrize(
    "step", ["steps.download", "steps.process", "steps.register", "steps.predict", "steps.reproduce"]
)
def test_steps_that_do_not_train_start_without_model_libraries(step):
    loaded = modules_loaded("-c", f"import {step}")
    assert not heavy_among(loaded), heavy_among(loaded)


def test_main_checks_autogluon_params_without_pandas_or_a_model_library():
    """`main` validates an AutoML tool's `params` before any step runs: only that tool's checks load
    (FLAML's and auto-sklearn's modules would bring pandas and numpy)."""
    check = (
        "from tabular_pipeline.orchestration.pipeline_inputs import check_training_choice; "
        "assert check_training_choice({'tool': 'autogluon', 'time_budget': 60}, {'presets': 'good_quality'}, {}, "
        "set()) == 'train_automl'"
    )
    loaded = modules_loaded("-c", check)
    assert not heavy_among(loaded), heavy_among(loaded)
    assert not {"pandas", "numpy", "mlflow"} & loaded, sorted({"pandas", "numpy", "mlflow"} & loaded)
