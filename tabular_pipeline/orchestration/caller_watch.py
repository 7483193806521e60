"""A step must not outlive the caller that waits on it to record its outcome.

A process MLflow's project runner started (`MLFLOW_RUN_ID` is set: `main` under `mlflow run` or
`mlflow.projects.run`, a step under `main`) whose caller is killed with SIGKILL, or whose `bash -c`
MLflow terminates, would otherwise go on to register and promote for a caller that is gone.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# The watch is on unless this says "false", "0", "no" or "off"; any other value is refused.
WATCH_SETTING = "TABULAR_PIPELINE_WATCH_CALLER"
WATCH_ON = frozenset({"", "true", "1", "yes", "on"})
WATCH_OFF = frozenset({"false", "0", "no", "off"})
# The watch's own signal, numbered above SIGTERM: Python runs pending handlers in signal order, so a
# SIGTERM that came first (main stopping its step) is handled first and keeps its reason. Where
# there are no real-time signals (macOS) nothing is watched.
WATCH_SIGNAL = signal.SIGRTMIN + 1 if hasattr(signal, "SIGRTMIN") else None


def is_watched() -> bool:
    """Whether MLflow's project runner started this process (`MLFLOW_RUN_ID` was set when the
    package was imported: `mlflow.start_run` unsets it) and the watch is not turned off."""
    from tabular_pipeline import STARTED_BY

    setting = os.environ.get(WATCH_SETTING, "").strip().lower()
    if setting not in WATCH_ON | WATCH_OFF:
        from tabular_pipeline.errors import PipelineError

        raise PipelineError(
            f"{WATCH_SETTING}={os.environ[WATCH_SETTING]!r} is not a switch; expected true or false "
            "(1/0, yes/no, on/off)"
        )
    return bool(STARTED_BY) and setting in WATCH_ON


@contextmanager
def watching_caller(on_caller_ended: Callable[[int], None], interval_s: float = 1.0) -> Iterator[list[int]]:
    """Within the block, call `on_caller_ended(pid)` in the main thread (from a signal handler)
    once a process of the caller chain has ended; it is expected to raise and stop the step.

    The chain is what `tabular_pipeline.STARTED_BY` read at import: the parent, then the parent of
    each shell on the way up (MLflow's virtualenv runner goes through `bash -c`), so a caller that
    ended while the entry point was still starting up is caught on entry. Only parent links are
    compared, never start times, which a clock step moves. Nothing is sent once the block has
    exited, so the step's own clean-up is never cut short. Any failure of the watch itself leaves
    the step unwatched rather than failing it.

    Yields:
        The pids watched, nearest first (none when this process is not watched).
    """
    from tabular_pipeline import STARTED_BY

    chain = list(STARTED_BY)
    main_thread = threading.current_thread() is threading.main_thread()
    if WATCH_SIGNAL is None or not is_watched() or chain[0] <= 1 or not main_thread:
        yield []
        return
    ended: list[int] = []
    armed, lock = [True], threading.Lock()

    def handle(_signum, _frame) -> None:
        if ended and armed[0]:  # one sent just as the block ended changes nothing
            on_caller_ended(ended[0])

    def watch() -> None:
        while True:
            try:
                gone = ended_caller(chain)
            except Exception:  # noqa: BLE001 - cannot tell (e.g. /proc hidden): stop watching, quietly
                return
            with lock:
                if not armed[0]:
                    return
                if gone is not None:
                    ended.append(gone)
                    # To the main thread, where the handler raises inside the block.
                    signal.pthread_kill(threading.main_thread().ident, WATCH_SIGNAL)
                    return
            time.sleep(interval_s)

    try:
        signal.signal(WATCH_SIGNAL, handle)
        threading.Thread(target=watch, name="caller-watch", daemon=True).start()
    except (OSError, RuntimeError, ValueError):
        yield []
        return
    try:
        yield chain
    finally:
        armed[0] = False  # one statement: nothing can interrupt it half done
        try:
            with lock:  # the thread is not sending now, and will not again
                pass
        finally:
            # Not back to the default, which for a real-time signal ends the process.
            signal.signal(WATCH_SIGNAL, signal.SIG_IGN)


def ended_caller(chain: list[int]) -> int | None:
    """The first process of `chain` that has ended: a process that ends hands its children to
    another at once, so each must still be the parent of the one below it (this one first)."""
    if os.getppid() != chain[0]:
        return chain[0]
    if len(chain) == 1:  # no shell between (MLflow's local runner execs the entry point)
        return None
    import psutil  # 19 ms to import: only where there is a shell's parent to read

    for child, parent in itertools.pairwise(chain):
        try:
            if psutil.Process(child).ppid() != parent:
                return parent
        except psutil.NoSuchProcess:
            return child
    return None
