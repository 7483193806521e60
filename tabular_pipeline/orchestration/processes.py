"""The processes a step starts: none may outlive it; nor may the step outlive the caller that
waits on it."""

from __future__ import annotations

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


def watch_caller(interval_s: float = 1.0) -> list[int]:
    """Stop this process as SIGTERM does when the process that started it ends first.

    Only for a process an MLflow project runner started (`MLFLOW_RUN_ID` is set: `mlflow run`,
    `mlflow.projects.run`, `main` for its steps). That caller waits on the step to record its
    outcome; once it is gone (killed with SIGKILL, or MLflow cancelling the shell it started the
    step through), nothing should go on to register or promote for it. When the parent is such a
    shell, its own parent is watched too. A run started by hand (`nohup python -m main &`) is left
    alone.

    Returns:
        The pids watched (none when this process was not started by MLflow).
    """
    import os
    import signal
    import threading
    import time

    import psutil

    if not os.environ.get("MLFLOW_RUN_ID"):
        return []
    callers = []
    try:
        process = psutil.Process().parent()
        while process is not None and process.pid > 1:
            callers.append((process.pid, process.create_time()))
            if process.name() not in SHELLS:
                break
            process = process.parent()
    except psutil.Error:  # a caller that ended while we looked is caught by the first check below
        pass

    def gone(pid: int, started: float) -> bool:
        try:
            caller = psutil.Process(pid)
            # Ended but not yet reaped, or the pid now names another process.
            return caller.status() == psutil.STATUS_ZOMBIE or caller.create_time() != started
        except psutil.NoSuchProcess:
            return True

    def watch() -> None:
        while True:
            # A parent that ends hands its children to another at once: the surest sign for it.
            reparented = os.getppid() != callers[0][0]
            ended = callers[0][0] if reparented else next((pid for pid, t in callers if gone(pid, t)), None)
            if ended is not None:
                CALLER_GONE.append(ended)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(interval_s)

    if callers:
        threading.Thread(target=watch, name="caller-watch", daemon=True).start()
    return [pid for pid, _ in callers]
