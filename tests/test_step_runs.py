"""The MLflow run around a step, in a process of its own (it installs signal handlers and ends its
children on exit): how it ends on bad input, on a bug, on Ctrl-C, and how runs are named."""

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import PROJECT_DIR
from mlflow import MlflowClient

from tabular_pipeline.orchestration.run_names import GENERATED_RUN_NAME, run_name_or_entry_point, run_name_tag

STEP = """
import sys
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.orchestration.step_runs import run_step

def body(run):
    print("run", run.info.run_id, flush=True)
    raise {error}

run_step("demo", body)
"""


def run_in_a_step_process(tmp_path: Path, script: str) -> tuple[str, subprocess.CompletedProcess]:
    """Run `script` (which calls `run_step`) in a Python of its own on a fresh SQLite store; the
    store's URI and the finished process."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300
    )
    return uri, done


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
    uri, done = run_in_a_step_process(tmp_path, STEP.format(error=error))
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


def test_a_run_name_that_cannot_be_made_falls_back_to_the_entry_point():
    assert run_name_or_entry_point("main", lambda: "main: lightgbm on t.csv") == "main: lightgbm on t.csv"
    assert run_name_or_entry_point("main", None) == "main"
    assert run_name_or_entry_point("main", lambda: {}["tool"]) == "main", "naming never fails a step"


# Every end of a run is counted (MLflow's own client does the work); the body leaves a library's
# run active on top of the step's, or ends the step's run itself, as libraries do.
RUNS_LEFT_BEHIND = """
import atexit, collections, json
import mlflow
from mlflow.tracking.client import MlflowClient
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.orchestration.step_runs import run_step

ends = collections.Counter()
set_terminated = MlflowClient.set_terminated

def counted(self, run_id, status=None, end_time=None):
    ends[run_id] += 1
    return set_terminated(self, run_id, status, end_time)

MlflowClient.set_terminated = counted
atexit.register(lambda: print("ends", json.dumps(ends), flush=True))

def body(run):
    print("run", run.info.run_id, flush=True)
    {what}
    raise PipelineError("the data is bad; expected good data")

run_step("demo", body)
"""


@pytest.mark.parametrize(
    "what",
    [
        'print("library", mlflow.start_run(nested=True).info.run_id, flush=True)',
        'mlflow.end_run("FINISHED")',
    ],
    ids=["a library's run left active", "the step's run ended by a library"],
)
def test_a_step_ends_its_run_once_with_its_own_status_whatever_libraries_left(tmp_path, what):
    uri, done = run_in_a_step_process(tmp_path, RUNS_LEFT_BEHIND.format(what=what))
    assert done.returncode == 2, done.stderr[-2000:]
    printed = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    step_run = printed["run"]
    ends = json.loads(printed["ends"])
    client = MlflowClient(uri)
    assert client.get_run(step_run).info.status == "FAILED", "the step's status, not the library's"
    if "library" in printed:
        assert client.get_run(printed["library"]).info.status == "FAILED"
        assert ends == {printed["library"]: 1, step_run: 1}, "each run ended in one request"
    else:  # ended FINISHED by the library, then FAILED by the step, by id
        assert ends == {step_run: 2}
    assert client.get_run(step_run).data.metrics.keys() >= {"step_seconds", "peak_memory_mb"}


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
    uri, done = run_in_a_step_process(tmp_path, SECOND_CTRL_C)
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


@contextmanager
def doomed_server(folder: Path) -> Iterator[tuple[str, int]]:
    """A `mlflow server` (SQLite) in its own process group, which the step under test kills:
    yields its URL and the group's pid; whatever is left of it is killed afterwards."""
    from conftest import BIN_DIR, free_port, subprocess_env, wait_until_healthy

    port = free_port()
    server = subprocess.Popen(
        [str(BIN_DIR / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=subprocess_env(""), cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", server, 120)
        yield f"http://127.0.0.1:{port}", server.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


SERVER_GOES_AWAY = """
import os, signal, subprocess, sys
from tabular_pipeline.orchestration.step_runs import run_step

def body(run):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print("run", run.info.run_id, "child", child.pid, flush=True)
    os.killpg(int(os.environ["SERVER_PID"]), signal.SIGKILL)

run_step("demo", body)
"""


def test_a_tracking_server_gone_at_the_step_end_gives_one_line_and_ends_the_process_tree(tmp_path):
    """The server dies while the step works: at the end the step cannot mark its run; it says so in
    one line (no traceback), ends every process it started, and exits non-zero."""
    import psutil
    from conftest import subprocess_env

    with doomed_server(tmp_path) as (url, server_pid):
        # The step kills the server's whole process group (its workers too), as a lost machine would.
        env = subprocess_env(
            url, SERVER_PID=str(server_pid), MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5"
        )
        done = subprocess.run(
            [sys.executable, "-c", SERVER_GOES_AWAY], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
    port = url.rsplit(":", 1)[1]
    assert done.returncode == 2, done.stderr[-3000:]
    run_id, child = done.stdout.split()[1], int(done.stdout.split()[3])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: demo: the tracking server at http://127.0.0.1:{port} stopped answering as the step ended ("
    ), done.stderr[-3000:]
    assert errors[0].endswith(f"run {run_id} could not be marked FINISHED")
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE, "its child ended"


STOPPED_WITH_THE_SERVER_GONE = """
import os, signal, sys
from tabular_pipeline.orchestration.step_runs import run_step

def body(run):
    print("run", run.info.run_id, flush=True)
    os.killpg(int(os.environ["SERVER_PID"]), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGTERM)  # the orchestrator ends the step too

run_step("demo", body)
"""


def test_a_step_stopped_with_its_tracking_server_gone_ends_in_seconds_not_minutes(tmp_path):
    """An orchestrator that ends everything (the server, then the step): with MLflow's default
    retries (minutes per call) the stopping step would outlive its caller that long; it ends
    within seconds with one line."""
    import time

    from conftest import subprocess_env

    with doomed_server(tmp_path) as (url, server_pid):
        env = subprocess_env(url, SERVER_PID=str(server_pid))  # MLflow's own retries
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", STOPPED_WITH_THE_SERVER_GONE], cwd=PROJECT_DIR, env=env, capture_output=True,
            text=True, timeout=240,
        )  # fmt: skip
        seconds = time.monotonic() - started
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr[-3000:]
    assert errors[0].startswith("error: demo: terminated by SIGTERM; and the tracking server at "), errors[0]
    assert errors[0].endswith("could not be marked KILLED")
    assert seconds < 120, f"took {seconds:.0f} s to give up on a server that is gone"
