"""A value of a declared parameter that its type refuses (`-P cv=three`), for every entry point and
every typed parameter: one `error:` line naming `-P <name>` and what was expected, exit 2, and a
FAILED run that carries the message, as for any other bad input (not click's usage text)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import PROJECT_DIR
from mlflow import MlflowClient

from tabular_pipeline.parameters.entry_points import declared_parameters, mlproject

# Each case calls the entry point's click command in one process (imports paid once); a required
# parameter gets a placeholder, since a refused value stops the step before it reads any other.
BATTERY = """
import contextlib, importlib, io, json, sys
import mlflow

cases, results = json.loads(sys.argv[1]), []
for number, (entry_point, args) in enumerate(cases):
    module = importlib.import_module("main" if entry_point == "main" else f"steps.{entry_point}")
    mlflow.set_experiment(f"case-{number}")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            getattr(module, entry_point).main(args=args, prog_name=entry_point)
            code = 0
        except SystemExit as stop:
            code = stop.code
    run = mlflow.last_active_run()
    results.append({"code": code, "stderr": stderr.getvalue(), "run_id": run.info.run_id if run else None})
print(json.dumps(results))
"""

EXPECTED = {"float": "expected a number", "whole": "expected a whole number", "switch": "expected true or false"}


def typed_parameters() -> list[tuple[str, str, str]]:
    """(entry point, parameter, kind) for every parameter whose value is converted from text."""
    from tabular_pipeline.parameters.entry_points import SWITCH_PARAMETERS, WHOLE_NUMBER_PARAMETERS

    found = []
    for entry_point in mlproject()["entry_points"]:
        for name, parameter in declared_parameters(entry_point).items():
            if name in WHOLE_NUMBER_PARAMETERS:
                found.append((entry_point, name, "whole"))
            elif name in SWITCH_PARAMETERS:
                found.append((entry_point, name, "switch"))
            elif parameter.type == "float":
                found.append((entry_point, name, "float"))
    return found


def arguments(entry_point: str, name: str, value: str) -> list[str]:
    """`--name value`, plus a placeholder for each required parameter: a refused value stops the
    step before it reads any other."""
    required = [other for other, parameter in declared_parameters(entry_point).items() if parameter.required]
    return [f"--{name}", value, *(argument for other in required for argument in (f"--{other}", "placeholder"))]


# main runs that fail on their options are named after the pipeline too (and say Spark when on it).
FAILED_MAIN = {
    "main: xgboost on Spark on missing.csv": [
        "--algorithm",
        "XGBoost",
        "--engine",
        "spark",
        "--data_path",
        "m/missing.csv",
    ],
    "main: flaml on missing.csv": ["--tool", "flaml", "--data_path", "/nowhere/missing.csv"],
}


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """Every typed parameter of every entry point given "three", then the FAILED_MAIN cases,
    against a SQLite store."""
    folder = tmp_path_factory.mktemp("typed")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    cases = [(entry_point, arguments(entry_point, name, "three")) for entry_point, name, _ in typed_parameters()]
    cases += [("main", args) for args in FAILED_MAIN.values()]
    env = {"MLFLOW_TRACKING_URI": uri, "PATH": "/usr/bin:/bin", "HOME": str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", BATTERY, json.dumps(cases)],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    keys = [(e, n) for e, n, _ in typed_parameters()] + list(FAILED_MAIN)
    return uri, dict(zip(keys, results, strict=True))


def test_every_entry_point_declares_typed_parameters():
    kinds = {kind for _, _, kind in typed_parameters()}
    assert kinds == set(EXPECTED) and len(typed_parameters()) >= 20


@pytest.mark.parametrize(("entry_point", "name", "kind"), typed_parameters())
def test_a_refused_value_fails_the_run_in_one_line(refused, entry_point, name, kind):
    uri, results = refused
    result = results[(entry_point, name)]
    assert result["code"] == 2, result["stderr"]
    assert "Usage:" not in result["stderr"] and "Traceback" not in result["stderr"]
    [line] = [line for line in result["stderr"].splitlines() if line.startswith("error: ")]
    assert line.startswith(f"error: {entry_point}: -P {name}='three' is not ") and EXPECTED[kind] in line, line
    run = MlflowClient(uri).get_run(result["run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["pipeline.error"] == line.removeprefix(f"error: {entry_point}: ")
    if entry_point == "main":
        assert run.info.run_name == "main: lightgbm on breast_cancer.csv", "named after the pipeline, failed or not"
    else:
        assert run.info.run_name == entry_point


@pytest.mark.parametrize("name", FAILED_MAIN)
def test_a_failed_main_run_is_named_after_the_pipeline(refused, name):
    uri, results = refused
    result = results[name]
    assert result["code"] == 2, result["stderr"]
    run = MlflowClient(uri).get_run(result["run_id"])
    assert run.info.status == "FAILED" and run.info.run_name == name
