"""Reusable building blocks of the tabular MLflow pipeline, one sub-package per concern.

- `parameters`: the entry points' declared parameters, click options, safe parameter strings.
- `data`: fetching sources, reading and validating tables, splitting, screening columns.
- `training`: pipelines per algorithm, searches, AutoML tools (`training.automl`), model logging.
- `evaluation`: test metrics, plots, the model card.
- `registry`: registering versions, the promotion gate and lock, lineage.
- `scoring`: batch prediction on pandas and Spark, outputs written in place atomically.
- `orchestration`: the multistep workflow, step runs, fingerprints and the step cache.
- `serving`: the pyfunc model and the estimators it unpickles; the only code a model carries.

`paths` names every folder and file the code refers to; `errors` holds the one error type users see.
"""

import os


def _callers() -> tuple[int, ...]:
    """This process's parent and, when that is a shell (the one `bash -c` MLflow's runner may go
    through), the shell's own parent (from /proc, where there is one). Read at import, before
    anything slow: a caller that dies while an entry point still starts up is noticed too
    (`orchestration.caller_watch`)."""
    # Only a process MLflow's project runner started (read now: `mlflow.start_run` unsets it).
    if not os.environ.get("MLFLOW_RUN_ID"):
        return ()
    chain = [os.getppid()]
    while len(chain) < 2:
        try:
            with open(f"/proc/{chain[-1]}/comm") as comm, open(f"/proc/{chain[-1]}/stat") as stat:
                if comm.read().strip() not in ("bash", "sh", "dash", "zsh"):
                    break
                # The command name (field 2) may hold spaces; the parent is 2 fields after it.
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        if parent <= 1:
            break
        chain.append(parent)
    return tuple(chain)


# The process that started this one (and its parent when that is a shell), when MLflow's project
# runner started it; empty otherwise.
STARTED_BY = _callers()
