"""A step stops when the caller that waits on it ends first (`processes.watching_caller`): real
processes, one killed with SIGKILL, as an orchestrator's hard timeout or the out-of-memory killer
would; and the cases where it must not stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT_DIR

# The step's stand-in: it imports the package first (which records its parent, as every entry
# point does), waits `delay` seconds, then works inside the watch for 60 s. A SIGTERM is recorded
# with where it landed: inside the block ("terminated"), or after it ("after the block").
STEP = """
import os, signal, sys, time
from pathlib import Path
import tabular_pipeline
from tabular_pipeline.orchestration.processes import watching_caller

marker, delay, work = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
where = ["before the block"]
def stop(*_):
    marker.write_text("terminated" if where[0] == "inside" else where[0])
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
time.sleep(delay)
where[0] = "inside"  # run_step's try: a stop raised while entering the block is inside it too
with watching_caller(still_running=lambda: True, interval_s=0.1) as watched:
    marker.with_suffix(".ready").write_text(" ".join(map(str, watched)) or "none")
    time.sleep(work)
where[0] = "after the block"
marker.with_suffix(".done").write_text("")
time.sleep(60)
"""
# The caller: starts the step (directly, or through `bash -c` as MLflow's virtualenv runner does),
# writes the pid of what it started, and waits (or exits at once).
CALLER = """
import subprocess, sys, time
step, marker, through, delay, work, wait = sys.argv[1:7]
command = [sys.executable, "-c", step, marker, delay, work]
if through == "shell":
    import shlex
    command = ["bash", "-c", " ".join(map(shlex.quote, command)) + "; true"]  # `; true`: bash stays
started = subprocess.Popen(command)
with open(marker + ".child", "w") as handle:
    handle.write(str(started.pid))
time.sleep(float(wait))
"""
RUN_ID = "0" * 32


def start_caller(
    tmp_path: Path,
    through: str = "direct",
    env: dict[str, str] | None = None,
    delay: float = 0,
    work: float = 60,
    wait: float = 60,
) -> tuple[subprocess.Popen, Path]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TABULAR_PIPELINE_"))}
    environment.update({"PYTHONPATH": str(PROJECT_DIR), **(env or {})})
    marker = tmp_path / "step.txt"
    arguments = [STEP, str(marker), through, str(delay), str(work), str(wait)]
    return subprocess.Popen([sys.executable, "-c", CALLER, *arguments], env=environment), marker


def wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def cleanup():
    """Kill whatever stand-in a test leaves running (read from the pid files the callers write)."""
    started: list[Path] = []
    yield started.append
    for marker in started:
        for pid_file in (Path(f"{marker}.child"),):
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
    subprocess.run(["pkill", "-KILL", "-f", "step.txt"], check=False)  # a step under a killed shell


@pytest.mark.parametrize("through", ["direct", "shell"])
def test_a_step_stops_when_its_caller_is_killed(tmp_path, through, cleanup):
    caller, marker = start_caller(tmp_path, through, {"MLFLOW_RUN_ID": RUN_ID})
    cleanup(marker)
    assert wait_for(marker.with_suffix(".ready"), 30), "the step never started"
    watched = marker.with_suffix(".ready").read_text().split()
    assert str(caller.pid) in watched, f"the caller is watched ({watched}), through a shell too"
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    assert wait_for(marker, 10), "the step outlived its caller"
    assert marker.read_text() == "terminated", "stopped inside the block"


def test_a_step_stops_when_mlflow_cancels_the_shell_it_went_through(tmp_path, cleanup):
    """`mlflow.projects.run` interrupted in a notebook terminates the `bash -c` it started, which
    dies and leaves the step behind."""
    caller, marker = start_caller(tmp_path, "shell", {"MLFLOW_RUN_ID": RUN_ID})
    cleanup(marker)
    assert wait_for(marker.with_suffix(".ready"), 30), "the step never started"
    os.kill(int(Path(f"{marker}.child").read_text()), signal.SIGTERM)
    assert wait_for(marker, 10), "the step outlived the shell"
    assert marker.read_text() == "terminated"
    caller.kill()
    caller.wait()


def test_a_caller_that_ended_while_the_step_started_up_is_caught_on_entry(tmp_path, cleanup):
    """The caller exits 0.5 s after starting the step (its imports done, not yet in the watch);
    the step enters the watch at 2 s, already handed to another parent (init or a subreaper), and
    stops from the parent it recorded at import."""
    caller, marker = start_caller(tmp_path, env={"MLFLOW_RUN_ID": RUN_ID}, delay=2, wait=0.5)
    cleanup(marker)
    caller.wait()
    assert wait_for(marker, 15), "the step outlived a caller that ended before the watch began"
    assert marker.read_text() == "terminated"


def test_nothing_is_sent_after_the_block(tmp_path, cleanup):
    """A step past its work (recording its outcome) is not stopped by its caller ending then."""
    caller, marker = start_caller(tmp_path, env={"MLFLOW_RUN_ID": RUN_ID}, work=0)
    cleanup(marker)
    assert wait_for(marker.with_suffix(".done"), 30), "the step never finished its work"
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    assert not wait_for(marker, 1.5), marker.read_text()


@pytest.mark.parametrize(
    "env",
    [{}, {"MLFLOW_RUN_ID": RUN_ID, "TABULAR_PIPELINE_WATCH_CALLER": "false"}],
    ids=["started-by-hand", "opted-out"],
)
def test_a_process_not_started_by_mlflow_or_opted_out_is_left_alone(tmp_path, env, cleanup):
    """`nohup python -m main &` from a shell that then exits must go on running."""
    caller, marker = start_caller(tmp_path, env=env)
    cleanup(marker)
    assert wait_for(marker.with_suffix(".ready"), 30), "the step never started"
    assert marker.with_suffix(".ready").read_text() == "none"
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    assert not wait_for(marker, 1.5), "a process not watched was stopped"
