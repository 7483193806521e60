"""Ending an entry point's process without the interpreter's last garbage collection.

When Python shuts down it clears every module and runs the cyclic garbage collector over all the
objects still alive: 0.29 s per process after `import mlflow` on this project's machine
(bench/RESULTS.md, the start-up table, at 907f04d) and about 0.44 s after what `train_basic`
loads (by hand, in the same file's reading). Every `mlflow run` of the pipeline starts five such
processes, plus one per model the gate scores.
Freezing the heap (`gc.freeze`) as the last exit handler puts every object out of the
collector's reach.

What still runs: every other exit handler (MLflow's end of run and async logging, logging's
flush, `weakref.finalize` callbacks such as `TemporaryDirectory` clean-up), and the finalisers of
objects that module teardown releases by reference count. What does not: finalisers of objects
kept alive only by a reference cycle (a `__del__`, an unclosed buffered file's flush, a
`NamedTemporaryFile`'s removal, a suspended generator's `finally`). Python does not promise those
at exit either ("It is not guaranteed that __del__() methods are called for objects that still
exist when the interpreter exits", the language reference's data model); this project's code
closes what it writes with `with` blocks and moves outputs into place explicitly, so none of its
work depends on them.

Standard library only: imported before anything else, like `interpreter`.
"""

from __future__ import annotations

import atexit
import gc
import sys


def started_as_module(package: str) -> bool:
    """Whether this process was started as `python -m <package>` or `-m <package>.<module>` (an
    entry point), not a Python that imported it (a test, a notebook)."""
    argv = getattr(sys, "orig_argv", [])
    return any(
        flag == "-m" and (name == package or name.startswith(package + "."))
        for flag, name in zip(argv, argv[1:], strict=False)
    )


def skip_final_collection(package: str) -> None:
    """When this process is the entry point `package` (`started_as_module`), freeze the heap once
    every exit handler registered after this call has run (exit handlers run last-registered
    first): call it first thing, before any other import registers one. A process that merely
    imports the package keeps its final collection."""
    if started_as_module(package):
        atexit.register(gc.freeze)
