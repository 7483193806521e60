"""The processes a step starts: none may outlive it (`orchestration.caller_watch`: nor may the
step outlive the caller that waits on it)."""

from __future__ import annotations


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
