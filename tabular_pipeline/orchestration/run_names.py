"""How step runs are named in the MLflow UI, and the experiment kind that opens on them."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from tabular_pipeline.errors import one_line

# MLflow names runs it starts without a name like "hilarious-turtle-362".
GENERATED_RUN_NAME = re.compile(r"^[a-z]+-[a-z]+-\d{1,4}$")
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
# The MLflow UI opens an experiment of this kind on its runs and models, not on GenAI traces.
MODEL_TRAINING_KIND = "custom_model_development"


def run_name_tag(current: str | None, entry_point: str) -> dict[str, str]:
    """Rename a run MLflow named at random after its entry point; a name someone chose stays."""
    return {"mlflow.runName": entry_point} if not current or GENERATED_RUN_NAME.match(current) else {}


def run_name_or_entry_point(entry_point: str, run_name: Callable[[], str] | None) -> str:
    """The name for a step's run: its caller's `run_name()` (main's is the pipeline's), else the
    entry point; a name that cannot be made falls back to the entry point, so it never fails a step."""
    if run_name is None:
        return entry_point
    try:
        return run_name()
    except Exception:  # noqa: BLE001 - a name is for the UI; the step's own checks report bad options
        return entry_point


def mark_experiment_kind(client, experiment_id: str) -> None:
    """Tag the experiment as model training, unless it already says what it is."""
    try:
        if EXPERIMENT_KIND_TAG not in client.get_experiment(experiment_id).tags:
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    except Exception as error:  # noqa: BLE001 - a view setting must never fail a step
        logging.getLogger("step").warning(
            "could not mark experiment %s as model training (%s)", experiment_id, one_line(error)
        )
