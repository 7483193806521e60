"""Entry points end without the interpreter's last garbage collections (`process_exit`): a fresh
Python that imports them leaves an object held in a reference cycle uncollected at exit, while
every exit handler still runs. Times belong in bench/ (the start-up floor's table)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import PROJECT_DIR

# A cyclic object whose finalizer reports itself, released just before the process ends: only the
# interpreter's final collection can reach it. An exit handler registered afterwards still reports.
PROBE = """
import atexit, gc, os
{imports}
class Cycle:
    def __del__(self):
        os.write(1, b"collected;")
atexit.register(lambda: os.write(1, b"handler ran;"))
gc.disable()  # no collection before exit, whatever the imports allocated
cycle = Cycle(); cycle.self = cycle; del cycle
"""


def exit_report(imports: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(imports=imports)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_plain_python_collects_the_cycle_at_exit():
    """The control: without the entry points' setting, the final collection finalises the cycle."""
    assert exit_report("import tabular_pipeline.process_exit") == "handler ran;collected;"


@pytest.mark.parametrize("entry_point", ["steps", "main"])
def test_entry_points_skip_the_final_collection_and_keep_their_exit_handlers(entry_point):
    assert exit_report(f"import {entry_point}") == "handler ran;"


def test_the_gates_scorer_ends_by_freezing_the_heap():
    """The gate scores each model in a fresh Python (`model_scoring.SCORER`): its last statement,
    once the answer is written, is the freeze (the probe above shows what that does)."""
    import ast

    from tabular_pipeline.registry.model_scoring import SCORER

    assert ast.unparse(ast.parse(SCORER).body[-1]) == "gc.freeze()"
