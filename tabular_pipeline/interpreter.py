"""Making sure an entry point runs on a Python that has the project's packages.

With `env_manager="local"`, MLflow starts each entry point as `python3 -m ...` from PATH. A
notebook kernel or a virtualenv's Python called by its full path often has another `python` first
on PATH, and the step would die on its first import with a traceback. This module (standard
library only, imported before anything else) finds the Python that launched the step, which does
have the packages, and runs the step again with it; failing that, it says so in one line.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REQUIRED_MODULES = ("mlflow", "pandas", "click", "sklearn")
REEXEC_ENV = "TABULAR_PIPELINE_REEXEC"
ANCESTORS_SEARCHED = 4


def missing_modules(python: str | None = None) -> list[str]:
    """The required modules that `python` (this interpreter when None) cannot import."""
    if python is None:
        return [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    probe = (
        "import importlib.util, sys; print(','.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
    )
    try:
        done = subprocess.run([python, "-c", probe, *REQUIRED_MODULES], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return list(REQUIRED_MODULES)
    return [name for name in done.stdout.strip().split(",") if name] if done.returncode == 0 else list(REQUIRED_MODULES)


def started_as(pid: int) -> str:
    """The path process `pid` was started by (Linux only).

    argv[0], not /proc/<pid>/exe: a virtualenv's python is a link to the base interpreter, and only
    the path it was started by says which environment it runs in. A relative path
    (`.venv/bin/python`) is taken from the process's folder, and a bare name (`python`) from its
    PATH; the link's target only when neither finds it.
    """
    import shutil

    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        argv0 = cmdline.read().split(b"\0")[0].decode()
    if os.path.isabs(argv0):
        return argv0
    folder = os.readlink(f"/proc/{pid}/cwd")
    if os.sep in argv0:
        return os.path.normpath(os.path.join(folder, argv0))
    with open(f"/proc/{pid}/environ", "rb") as environ:
        variables = dict(item.split(b"=", 1) for item in environ.read().split(b"\0") if b"=" in item)
    search = [os.path.join(folder, entry) for entry in variables.get(b"PATH", b"").decode().split(os.pathsep)]
    return shutil.which(argv0, path=os.pathsep.join(search)) or os.readlink(f"/proc/{pid}/exe")


def launching_pythons() -> list[str]:
    """The Python executables among this process's ancestors, nearest first (Linux only)."""
    found, pid = [], os.getppid()
    for _ in range(ANCESTORS_SEARCHED):
        try:
            executable = started_as(pid)
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError, UnicodeDecodeError):
            break
        if Path(executable).name.startswith("python") and executable != sys.executable and executable not in found:
            found.append(executable)
        if pid <= 1:
            break
    return found


def ensure_project_interpreter() -> None:
    """Return if this Python has the project's packages; otherwise run this entry point again on the
    Python that launched it, or exit 2 with one line saying what is wrong and the two ways out."""
    missing = missing_modules()
    if not missing:
        return
    if not os.environ.get(REEXEC_ENV):
        for python in launching_pythons():
            if not missing_modules(python):
                os.environ[REEXEC_ENV] = "1"
                # Its children (the pipeline's steps) find the same Python first on PATH.
                os.environ["PATH"] = os.pathsep.join([str(Path(python).parent), os.environ.get("PATH", "")])
                os.execv(python, [python, *sys.orig_argv[1:]])
    module = next((arg for arg in sys.orig_argv[1:] if not arg.startswith("-")), "step")
    entry_point = module.removeprefix("steps.")
    print(
        f"error: {entry_point}: the Python on PATH ({sys.executable}) lacks the project's packages "
        f"({', '.join(missing)}); expected the project's environment: put its bin folder first on PATH, "
        'or run with env_manager="virtualenv" (MLflow then builds it from python_env.yaml)',
        file=sys.stderr,
    )
    sys.exit(2)
