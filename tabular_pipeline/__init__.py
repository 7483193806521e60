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

# The process that started this one, read before anything slow is imported: a caller that dies
# while an entry point still starts up is noticed too (`orchestration.processes.watching_caller`).
STARTED_BY = os.getppid()
