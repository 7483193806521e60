"""Entry points end without the interpreter's last garbage collection (`process_exit`): a Python
started as one leaves an object held only by a reference cycle unfinalised at exit, while every
exit handler, and `weakref.finalize` clean-up such as a temporary folder's, still runs. A Python
that merely imports the package (a test, a notebook) keeps its final collection. Times belong in
bench/ (the start-up table of bench/RESULTS.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_DIR

# `argv` stands for how the process was started; then a temporary folder and a cyclic object whose
# finalizer reports itself, both held only by a cycle and released just before the process ends.
PROBE = """
import atexit, gc, os, sys, tempfile
sys.orig_argv = {argv!r}
import {module}
class Cycle:
    def __del__(self):
        os.write(1, b"collected;")
atexit.register(lambda: os.write(1, b"handler ran;"))
gc.disable()  # no collection before exit, whatever the imports allocated
cycle = Cycle(); cycle.self = cycle
cycle.folder = tempfile.TemporaryDirectory(dir={scratch!r})
del cycle
"""


def exit_report(module: str, argv: list[str], scratch: Path) -> tuple[str, list[Path]]:
    """What the probe printed at exit, and what it left in `scratch`."""
    code = PROBE.format(argv=argv, module=module, scratch=str(scratch))
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, list(scratch.iterdir())


@pytest.mark.parametrize("module", ["steps", "main"])
def test_entry_points_skip_the_final_collection_and_keep_their_exit_handlers(module, tmp_path):
    started_as = ["python3", "-m", f"{module}.download" if module == "steps" else "main", "--help"]
    printed, left = exit_report(module, started_as, tmp_path)
    assert printed == "handler ran;", "the cycle's finalizer is skipped; the exit handler is not"
    assert left == [], "the temporary folder is removed by its weakref.finalize exit handler"


@pytest.mark.parametrize("module", ["steps", "main"])
def test_a_python_that_imports_them_keeps_its_final_collection(module, tmp_path):
    printed, left = exit_report(module, ["python3", "-c", "import " + module], tmp_path)
    assert printed == "handler ran;collected;" and left == []


def test_started_as_module_reads_the_command_line(monkeypatch):
    from tabular_pipeline.process_exit import started_as_module

    for argv, expected in (
        (["python3", "-m", "steps.train_basic", "--data_path", "x"], True),
        (["/venv/bin/python", "-X", "importtime", "-m", "steps"], True),
        (["python3", "-m", "stepsister"], False),
        (["python3", "-c", "import steps"], False),
        (["python3", "steps/download.py"], False),
        (["python3", "-m", "pytest", "tests/test_download.py"], False),
    ):
        monkeypatch.setattr(sys, "orig_argv", argv)
        assert started_as_module("steps") is expected, argv


def test_the_gates_scorer_ends_by_freezing_the_heap():
    """The gate scores each model in a fresh Python (`model_scoring.SCORER`): its last statement,
    once the answer is written, is the freeze (the probe above shows what that does)."""
    import ast

    from tabular_pipeline.registry.model_scoring import SCORER

    assert ast.unparse(ast.parse(SCORER).body[-1]) == "gc.freeze()"
