"""Unit tests of `tabular_pipeline.interpreter`: which Python launched a step, with real processes."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest
from conftest import PROJECT_DIR

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

PROBE = "from tabular_pipeline.interpreter import launching_pythons; print(launching_pythons())"


def launching_pythons_below(command: list[str], cwd, env: dict[str, str]) -> list[str]:
    """What a child of the Python started as `command` (in `cwd`, with `env`) finds."""
    parent = f"import subprocess, sys; subprocess.run([{sys.executable!r}, '-c', {PROBE!r}], check=True)"
    done = subprocess.run(
        [*command, "-c", parent], cwd=cwd, env={**env, "PYTHONPATH": str(PROJECT_DIR)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip())


@pytest.fixture()
def environment_python(tmp_path):
    """A Python reached through a link in an environment's bin folder, as a virtualenv's is."""
    python = tmp_path / "env" / "bin" / "python3"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    return python


def test_a_python_started_by_a_relative_path_is_found_by_that_path(tmp_path, environment_python):
    # `.venv/bin/python notebook.py`: the link's target is the base interpreter, without the packages.
    found = launching_pythons_below(["env/bin/python3"], tmp_path, dict(os.environ))
    assert found[0] == str(environment_python)


def test_a_python_started_by_name_is_found_on_its_own_path(tmp_path, environment_python):
    env = {**os.environ, "PATH": os.pathsep.join([str(environment_python.parent), os.environ["PATH"]])}
    found = launching_pythons_below(["python3"], tmp_path, env)
    assert found[0] == str(environment_python)


def test_a_python_started_by_its_full_path_is_found_by_it(tmp_path, environment_python):
    found = launching_pythons_below([str(environment_python)], tmp_path, dict(os.environ))
    assert found[0] == str(environment_python)
