"""A step stops when the caller that waits on it ends first (`processes.watch_caller`): real
processes, one killed with SIGKILL, as an orchestrator's timeout or an out-of-memory kill would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT_DIR

# The step's stand-in: it watches its caller, says so, and records a SIGTERM before exiting.
STEP = """
import os, signal, sys, time
from pathlib import Path
from tabular_pipeline.orchestration.processes import watch_caller

marker = Path(sys.argv[1])
def stop(*_):
    marker.write_text("terminated")
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
watched = watch_caller(0.1)
marker.with_suffix(".ready").write_text(" ".join(map(str, watched)) or "none")
time.sleep(60)
"""
# The caller: starts the step (directly, or through `bash -c` as MLflow's virtualenv runner does),
# prints its own pid, and waits.
CALLER = """
import subprocess, sys, time
command = [sys.executable, "-c", sys.argv[1], sys.argv[2]]
if sys.argv[3] == "shell":
    import shlex
    command = ["bash", "-c", " ".join(map(shlex.quote, command)) + "; true"]  # `; true`: bash stays
started = subprocess.Popen(command)
with open(sys.argv[2] + ".child", "w") as handle:
    handle.write(str(started.pid))
time.sleep(60)
"""


def start_caller(tmp_path: Path, through: str, run_id: str | None) -> tuple[subprocess.Popen, Path]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
    env["PYTHONPATH"] = str(PROJECT_DIR)
    if run_id:
        env["MLFLOW_RUN_ID"] = run_id
    marker = tmp_path / "step.txt"
    caller = subprocess.Popen([sys.executable, "-c", CALLER, STEP, str(marker), through], env=env)
    ready = marker.with_suffix(".ready")
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    return caller, marker


def wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("through", ["direct", "shell"])
def test_a_step_stops_when_its_caller_is_killed(tmp_path, through):
    caller, marker = start_caller(tmp_path, through, run_id="0" * 32)
    watched = marker.with_suffix(".ready").read_text().split()
    assert str(caller.pid) in watched, f"the caller is watched ({watched}), through a shell too"
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    assert wait_for(marker, 10), "the step outlived its caller"
    assert marker.read_text() == "terminated"


def test_a_step_stops_when_mlflow_cancels_the_shell_it_went_through(tmp_path):
    """`mlflow.projects.run` interrupted in a notebook terminates the `bash -c` it started, which
    dies and leaves the step behind."""
    caller, marker = start_caller(tmp_path, "shell", run_id="0" * 32)
    shell = int(Path(f"{marker}.child").read_text())
    os.kill(shell, signal.SIGTERM)
    assert wait_for(marker, 10), "the step outlived the shell"
    assert marker.read_text() == "terminated"
    caller.kill()
    caller.wait()


def test_a_process_not_started_by_mlflow_is_left_alone(tmp_path):
    """`nohup python -m main &` from a shell that then exits must go on running."""
    caller, marker = start_caller(tmp_path, "direct", run_id=None)
    assert marker.with_suffix(".ready").read_text() == "none"
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    assert not wait_for(marker, 1.5), "a process started by hand was stopped"
    subprocess.run(["pkill", "-f", str(marker)], check=False)  # the orphaned stand-in itself
