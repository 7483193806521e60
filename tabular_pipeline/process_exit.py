"""Ending an entry point's process without the interpreter's last garbage collections.

When Python shuts down it clears every module and runs the cyclic garbage collector over all the
objects still alive. After MLflow, pandas, scikit-learn and LightGBM are imported that takes 0.3 to
0.45 s per process on this project's machine (bench/RESULTS.md), and every `mlflow run` of the
pipeline starts five such processes, plus one per model the gate scores. Freezing the heap
(`gc.freeze`) as the last exit handler puts every object out of the collector's reach: every other
exit handler has run by then (MLflow's, logging's, temporary folders'), reference counting still
finalises what module teardown releases, and what is skipped is reclaiming memory held in
reference cycles, which the operating system takes back with the process anyway.

Standard library only: imported before anything else, like `interpreter`.
"""

from __future__ import annotations

import atexit
import gc


def skip_final_collection() -> None:
    """Freeze the heap once every exit handler registered after this call has run (exit handlers
    run last-registered first): call it first thing in an entry point's process, never in a
    library call, whose caller's process goes on."""
    atexit.register(gc.freeze)
