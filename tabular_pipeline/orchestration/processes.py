"""The processes a step starts: none may outlive it; nor may the step outlive the caller that
waits on it."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Set to "false" to let a step run on after the process that started it ends.
WATCH_SETTING = "TABULAR_PIPELINE_WATCH_CALLER"
# Shells MLflow's project runner starts a step through (`bash -c "source <env>/activate && ..."`).
SHELLS = frozenset({"bash", "sh", "dash", "zsh"})
# The caller's pid, once it has ended and the step was told to stop because of it.
CALLER_GONE: list[int] = []


def end_process_tree(root_pid: int, include_root: bool, grace_s: float = 10.0) -> list[str]:
    """SIGTERM every process below `root_pid` (and the root itself if asked), wait up to `grace_s`
    for them to end, then SIGKILL what is left.

    Returns:
        "name (pid)" of each process that had to be killed.
    """
    import psutil

    try:
        root = psutil.Process(root_pid)
        processes = root.children(recursive=True) + ([root] if include_root else [])
    except psutil.NoSuchProcess:
        return []
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    killed = []
    for process in alive:
        try:
            killed.append(f"{process.name()} ({process.pid})")
            process.kill()
        except psutil.NoSuchProcess:
            pass
    return killed


@contextmanager
def watching_caller(still_running: Callable[[], bool], interval_s: float = 1.0) -> Iterator[list[int]]:
    """Within the block, stop this process as SIGTERM does if the process that started it ends.

    Only for a process an MLflow project runner started (`MLFLOW_RUN_ID` is set: `mlflow run`,
    `mlflow.projects.run`, `main` for its steps), unless `TABULAR_PIPELINE_WATCH_CALLER=false`.
    That caller waits on the step to record its outcome; once it is gone (killed with SIGKILL, or
    MLflow terminating the shell it started the step through), nothing should go on to register
    or promote for it. When the parent is such a shell, its own parent is watched too. A run
    started by hand (`nohup python -m main &`) is left alone.

    Only parent links are compared, never start times: a clock step (NTP, a resumed VM) moves
    those. A caller that ended while the entry point was still importing is caught on entry,
    from the parent recorded at import (`tabular_pipeline.STARTED_BY`). The signal goes out only
    inside the block and while `still_running()` (not once the step is already stopping), so it
    never lands in the step's own clean-up.

    Yields:
        The pids watched, nearest first (none when this process is not watched).
    """
    import os

    from tabular_pipeline import STARTED_BY

    watched = os.environ.get("MLFLOW_RUN_ID") and os.environ.get(WATCH_SETTING, "true").lower() != "false"
    if not watched or STARTED_BY <= 1:
        yield []
        return
    chain = caller_chain(STARTED_BY)
    armed, lock = threading.Event(), threading.Lock()
    armed.set()

    def watch() -> None:
        while armed.is_set():
            ended = ended_caller(chain)
            with lock:
                if ended is not None and armed.is_set() and still_running():
                    CALLER_GONE.append(ended)
                    # To the main thread, which raises the step's StepTerminated inside the block.
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
                    return
            time.sleep(interval_s)

    threading.Thread(target=watch, name="caller-watch", daemon=True).start()
    try:
        yield chain
    finally:
        with lock:
            armed.clear()


def caller_chain(parent: int) -> list[int]:
    """`parent`, then the parent of each shell on the way up, up to the first that is not one."""
    import psutil

    chain = [parent]
    try:
        process = psutil.Process(parent)
        while process.name() in SHELLS and process.ppid() > 1:
            chain.append(process.ppid())
            process = psutil.Process(chain[-1])
    except psutil.Error:  # it ended while we looked: `ended_caller` says so
        pass
    return chain


def ended_caller(chain: list[int]) -> int | None:
    """The first process of `chain` that has ended: a process that ends hands its children to
    another at once, so each must still be the parent of the one below it (this one first)."""
    import os

    import psutil

    if os.getppid() != chain[0]:
        return chain[0]
    for child, parent in itertools.pairwise(chain):
        try:
            if psutil.Process(child).ppid() != parent:
                return parent
        except psutil.NoSuchProcess:
            return child
    return None
