"""The MLflow run around a step, in a process of its own (it installs signal handlers and ends its
children on exit): how it ends on bad input, on a bug, on Ctrl-C, and how runs are named."""

import subprocess
import sys

import pytest
from conftest import PROJECT_DIR
from mlflow import MlflowClient

from tabular_pipeline.orchestration.step_runs import GENERATED_RUN_NAME, run_name_tag

STEP = """
import sys
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.orchestration.step_runs import run_step

def body(run):
    print("run", run.info.run_id, flush=True)
    raise {error}

run_step("demo", body)
"""


@pytest.mark.parametrize(
    ("error", "code", "status", "message"),
    [
        ('PipelineError("data is bad; expected good data")', 2, "FAILED", "data is bad; expected good data"),
        ("KeyboardInterrupt()", 130, "KILLED", "interrupted (Ctrl-C)"),
        ('ZeroDivisionError("a bug")', 1, "FAILED", "unexpected ZeroDivisionError: a bug"),
    ],
    ids=["bad input", "ctrl-c", "bug"],
)
def test_a_step_ends_its_run_and_says_why_in_one_line(tmp_path, error, code, status, message):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", STEP.format(error=error)],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == code, done.stderr[-2000:]
    assert [line for line in done.stderr.splitlines() if line.startswith("error: ")] == [f"error: demo: {message}"]
    run_id = done.stdout.split()[1]
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == status and run.data.tags["pipeline.error"] == message
    assert run.info.run_name == "demo", "a run MLflow named at random is named after its entry point"
    experiment = MlflowClient(uri).get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_only_generated_run_names_are_replaced():
    assert GENERATED_RUN_NAME.match("hilarious-turtle-362")
    assert run_name_tag("hilarious-turtle-362", "process") == {"mlflow.runName": "process"}
    assert run_name_tag("nightly churn retrain", "process") == {}, "a name someone chose stays"


SECOND_CTRL_C = """
import os, signal, time
from tabular_pipeline.orchestration.step_runs import run_step

def body(run):
    print("run", run.info.run_id, flush=True)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    finally:
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C while cleaning up
        time.sleep(0.2)
        print("cleaned up", flush=True)

run_step("demo", body)
"""


def test_a_second_ctrl_c_does_not_cut_the_clean_up_short(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", SECOND_CTRL_C], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 130 and "cleaned up" in done.stdout, done.stderr[-2000:]
    assert MlflowClient(uri).get_run(done.stdout.split()[1]).info.status == "KILLED"


def test_a_step_of_main_leaves_its_error_line_to_main(tmp_path):
    """Under main, the step records its message on its run and prints no `error:` line of its own:
    main prints one, with that message and the run's link."""
    from tabular_pipeline.orchestration.step_runs import STEP_OF_MAIN_ENV

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), STEP_OF_MAIN_ENV: "1"}
    script = STEP.format(error='PipelineError("data is bad; expected good data")')
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2 and "error:" not in done.stderr, done.stderr[-2000:]
    run = MlflowClient(uri).get_run(done.stdout.split()[1])
    assert run.info.status == "FAILED" and run.data.tags["pipeline.error"] == "data is bad; expected good data"
