"""A step stops when the caller that waits on it ends first (`orchestration.caller_watch`): real
processes, one killed with SIGKILL, as an orchestrator's hard timeout or the out-of-memory killer
would; and the cases where it must not stop, or must keep another reason to stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import PROJECT_DIR

# The step's stand-in: it imports the package (which reads its callers, as every entry point
# does) and says so, waits `delay` seconds, then works `work` seconds inside the watch ("hash":
# a long call in C instead). What stopped it is written to the marker file.
STEP = """
import hashlib, os, signal, sys, time
from pathlib import Path
import tabular_pipeline
marker, delay, work = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
Path(f"{marker.with_suffix('.pid')}.tmp").write_text(str(os.getpid()))
os.replace(f"{marker.with_suffix('.pid')}.tmp", marker.with_suffix(".pid"))
marker.with_suffix(".imported").write_text("")
from tabular_pipeline.orchestration.caller_watch import watching_caller

def put(path, text):  # whole or not at all: the test polls for these files
    Path(f"{path}.tmp").write_text(text)
    os.replace(f"{path}.tmp", path)

where = ["before the block"]
def stopped(reason):
    put(marker, reason if where[0] == "inside" else f"{reason} {where[0]}")
    os._exit(0)
signal.signal(signal.SIGTERM, lambda *_: stopped("terminated by SIGTERM"))
os.environ.pop("MLFLOW_RUN_ID", None)  # as `mlflow.start_run` does, before the step's body
time.sleep(delay)
where[0] = "inside"  # run_step's try: a stop raised while entering the block is inside it too
with watching_caller(on_caller_ended=lambda pid: stopped(f"caller {pid} ended"), interval_s=0.1) as watched:
    put(marker.with_suffix(".ready"), " ".join(map(str, watched)) or "none")
    if work == "hash":
        hashlib.pbkdf2_hmac("sha256", b"x", b"y", 3_000_000)
    else:
        time.sleep(float(work))
where[0] = "after the block"
marker.with_suffix(".done").write_text("")
time.sleep(60)
"""
# The caller: starts the step (directly, or through `bash -c` as MLflow's virtualenv runner does),
# writes the pid of what it started, then waits `wait` seconds, or until the step has imported.
CALLER = """
import os, subprocess, sys, time
step, marker, through, delay, work, wait = sys.argv[1:7]
command = [sys.executable, "-c", step, marker, delay, work]
if through == "shell":
    import shlex
    command = ["bash", "-c", " ".join(map(shlex.quote, command)) + "; true"]  # `; true`: bash stays
started = subprocess.Popen(command)
with open(marker + ".child.tmp", "w") as handle:
    handle.write(str(started.pid))
os.replace(marker + ".child.tmp", marker + ".child")
if wait == "imported":
    while not os.path.exists(marker.rsplit(".", 1)[0] + ".imported"):
        time.sleep(0.02)
else:
    time.sleep(float(wait))
"""
RUN_ID = "0" * 32
STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def end_every_stand_in():
    """Each caller leads a process group of its own, which its step (and shell) stay in."""
    yield
    while STARTED:
        caller = STARTED.pop()
        try:
            os.killpg(caller.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        caller.wait()


def start_caller(
    tmp_path: Path, through: str = "direct", env: dict[str, str] | None = None, delay: float = 0, work="60", wait="60"
) -> tuple[subprocess.Popen, Path]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TABULAR_PIPELINE_"))}
    environment.update({"PYTHONPATH": str(PROJECT_DIR), **(env or {})})
    marker = tmp_path / "step.txt"
    arguments = [STEP, str(marker), through, str(delay), str(work), str(wait)]
    caller = subprocess.Popen([sys.executable, "-c", CALLER, *arguments], env=environment, start_new_session=True)
    STARTED.append(caller)
    return caller, marker


def wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.05)
    return False


def kill(caller: subprocess.Popen) -> None:
    """SIGKILL the caller alone (its step lives on in the group until the fixture ends it)."""
    caller.send_signal(signal.SIGKILL)
    caller.wait()


@pytest.mark.parametrize("through", ["direct", "shell"])
def test_a_step_stops_when_its_caller_is_killed(tmp_path, through):
    caller, marker = start_caller(tmp_path, through, {"MLFLOW_RUN_ID": RUN_ID})
    assert wait_for(marker.with_suffix(".ready"), 30), "the step never started"
    watched = marker.with_suffix(".ready").read_text().split()
    assert str(caller.pid) in watched, f"the caller is watched ({watched}), through a shell too"
    kill(caller)
    assert wait_for(marker, 10), "the step outlived its caller"
    assert marker.read_text() == f"caller {caller.pid} ended", "stopped inside the block"


def test_a_step_stops_when_mlflow_cancels_the_shell_it_went_through(tmp_path):
    """`mlflow.projects.run` interrupted in a notebook terminates the `bash -c` it started, which
    dies and leaves the step behind."""
    _, marker = start_caller(tmp_path, "shell", {"MLFLOW_RUN_ID": RUN_ID})
    assert wait_for(marker.with_suffix(".ready"), 30), "the step never started"
    shell = int(Path(f"{marker}.child").read_text())
    os.kill(shell, signal.SIGTERM)
    assert wait_for(marker, 10), "the step outlived the shell"
    assert marker.read_text() == f"caller {shell} ended"


@pytest.mark.parametrize("through", ["direct", "shell"])
def test_a_caller_that_ended_while_the_step_started_up_is_caught_on_entry(tmp_path, through):
    """The caller exits once the step has imported the package, before it enters the watch; the
    step (and its shell) are already handed to another parent when it does, 2 s later."""
    caller, marker = start_caller(tmp_path, through, {"MLFLOW_RUN_ID": RUN_ID}, delay=2, wait="imported")
    caller.wait()
    assert wait_for(marker, 15), "the step outlived a caller that ended before the watch began"
    assert marker.read_text() == f"caller {caller.pid} ended"


def test_a_sigterm_that_came_first_keeps_its_reason(tmp_path):
    """`main` stops its step (SIGTERM to it and its shell together) while the step is in C code:
    both signals wait for the call to return, and the SIGTERM is handled first."""
    caller, marker = start_caller(tmp_path, "shell", {"MLFLOW_RUN_ID": RUN_ID}, work="hash")
    assert wait_for(marker.with_suffix(".ready"), 30), "the step never started"
    os.kill(int(marker.with_suffix(".pid").read_text()), signal.SIGTERM)
    kill(caller)
    assert wait_for(marker, 30), "the step never stopped"
    assert marker.read_text() == "terminated by SIGTERM"


def test_nothing_is_sent_after_the_block(tmp_path):
    """A step past its work (recording its outcome) is not stopped by its caller ending then."""
    caller, marker = start_caller(tmp_path, env={"MLFLOW_RUN_ID": RUN_ID}, work="0")
    assert wait_for(marker.with_suffix(".done"), 30), "the step never finished its work"
    assert str(caller.pid) in marker.with_suffix(".ready").read_text().split(), "it was watched"
    kill(caller)
    assert not wait_for(marker, 1.5), marker.read_text()
    step = psutil.Process(int(marker.with_suffix(".pid").read_text()))
    assert step.is_running() and step.status() != psutil.STATUS_ZOMBIE, "nothing ended it either"


@pytest.mark.parametrize(
    "env",
    [{}, *({"MLFLOW_RUN_ID": RUN_ID, "TABULAR_PIPELINE_WATCH_CALLER": value} for value in ("false", "0", "Off"))],
    ids=["started-by-hand", "false", "0", "Off"],
)
def test_a_process_not_started_by_mlflow_or_opted_out_is_left_alone(tmp_path, env):
    """`nohup python -m main &` from a shell that then exits must go on running."""
    caller, marker = start_caller(tmp_path, env=env)
    assert wait_for(marker.with_suffix(".ready"), 30), "the step never started"
    assert marker.with_suffix(".ready").read_text() == "none"
    kill(caller)
    assert not wait_for(marker, 1.5), "a process not watched was stopped"


def test_main_keeps_the_reason_it_already_has():
    """The run's message: a step already stopping keeps that reason; else its caller ended."""
    from tabular_pipeline.orchestration import step_runs

    saved = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        step_runs._STOP_REQUESTED[:] = ["terminated"]
        step_runs._caller_ended(123)  # nothing happens
        assert step_runs.terminated_message() == "terminated by SIGTERM"
        step_runs._STOP_REQUESTED.clear()
        with pytest.raises(step_runs.StepTerminated):
            step_runs._caller_ended(123)
        assert step_runs.terminated_message() == "stopped because the process that started it (pid 123) ended"
    finally:
        step_runs._STOP_REQUESTED.clear()
        step_runs.CALLER_GONE.clear()
        signal.signal(signal.SIGTERM, saved[0])
        signal.signal(signal.SIGINT, saved[1])


def test_a_watch_setting_that_is_not_a_switch_is_refused_in_one_line(monkeypatch):
    """A typo must not turn the watch off unnoticed: the step fails with one line (run_step
    reports a PipelineError so) before its work starts."""
    from tabular_pipeline.errors import PipelineError
    from tabular_pipeline.orchestration.caller_watch import is_watched, watching_caller

    monkeypatch.setenv("TABULAR_PIPELINE_WATCH_CALLER", "flase")
    with pytest.raises(PipelineError, match=r"^TABULAR_PIPELINE_WATCH_CALLER='flase' is not a switch; expected true "):
        is_watched()
    with pytest.raises(PipelineError), watching_caller(on_caller_ended=print):
        pytest.fail("the body ran")
    monkeypatch.setenv("TABULAR_PIPELINE_WATCH_CALLER", " OFF ")
    assert is_watched() is False
