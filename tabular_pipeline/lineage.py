"""What a model version carries so it can be rebuilt: the training run, its entry point and
parameters, the code (git commit and whether the tree was dirty), and the data digests. The model
itself records its environment (python_env.yaml, requirements.txt)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.fingerprints import code_version
from tabular_pipeline.sources import redact_source
from tabular_pipeline.step_runs import TAG_CODE_VERSION, TAG_ENTRY_POINT

PROJECT_DIR = Path(__file__).resolve().parent.parent
TAG_GIT_DIRTY = "pipeline.git_dirty"
TRAINING_ENTRY_POINTS = ("train_basic", "train_automl")
DATASET_LOG_ATTEMPTS = 4
# How PostgreSQL, SQLite and MySQL word a duplicate key; the tracking server passes the text on.
DUPLICATE_KEY_WORDINGS = ("duplicate key value", "unique constraint failed", "duplicate entry")
log = logging.getLogger("lineage")


def pandas_dataset(frame: pd.DataFrame, **kwargs):
    """`mlflow.data.from_pandas(frame, **kwargs)` with its schema inferred from a sample
    (`schemas.frame_schema`); the digest and row count are MLflow's own, from the whole frame."""
    import mlflow

    from tabular_pipeline.schemas import frame_schema

    dataset = mlflow.data.from_pandas(frame, **kwargs)
    try:
        dataset.__dict__["schema"] = frame_schema(frame)  # fills the cached property
    except Exception:  # noqa: BLE001 - MLflow then infers the schema itself, slowly but correctly
        pass
    return dataset


def is_concurrent_dataset_insert(message: str) -> bool:
    """Whether a `log_input` error is the tracking store losing a race: two runs inserting the
    same new dataset (experiment, name, digest) at once, so the second insert hits the key."""
    lowered = message.lower()
    return "dataset" in lowered and any(wording in lowered for wording in DUPLICATE_KEY_WORDINGS)


def log_dataset(dataset, context: str, attempts: int = DATASET_LOG_ATTEMPTS) -> None:
    """`mlflow.log_input`, tried again when a concurrent run inserted the same dataset first.

    MLflow's store looks the dataset up and then inserts it, in one transaction that is rolled
    back on the duplicate key; on the next try the lookup finds the other run's row and links it.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    for attempt in range(1, attempts + 1):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except MlflowException as error:
            if attempt == attempts or not is_concurrent_dataset_insert(str(error)):
                raise
            log.info("dataset %s was being logged by another run at the same time; trying again (%d/%d)", dataset.name, attempt + 1, attempts)
            time.sleep(0.2 * attempt)


def record_training_inputs(train: pd.DataFrame, test: pd.DataFrame, label: str) -> None:
    """Log the splits as the run's datasets (with digests) and the code that trains on them."""
    import mlflow

    log_dataset(pandas_dataset(train, name="train", targets=label), context="training")
    log_dataset(pandas_dataset(test, name="test", targets=label), context="testing")
    code = code_version(PROJECT_DIR)
    mlflow.set_tags({TAG_CODE_VERSION: code, TAG_GIT_DIRTY: str(not is_clean_commit(code)).lower()})


def is_clean_commit(code: str) -> bool:
    """Whether a code version names a plain git commit (no uncommitted changes, inside git)."""
    return len(code) == 40 and all(char in "0123456789abcdef" for char in code)


def dataset_digests(run) -> dict[str, str]:
    """The digests of a run's logged datasets by context (``training``, ``testing``, ``raw``)."""
    digests = {}
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        context = next((tag.value for tag in dataset_input.tags if tag.key == "mlflow.data.context"), dataset_input.dataset.name)
        digests[context] = dataset_input.dataset.digest
    return digests


def lineage_tags(run) -> dict[str, str]:
    """Model version tags that point back at everything the training run used.

    Args:
        run: the training run (a `mlflow.entities.Run`).

    Returns:
        ``lineage.*`` tags: run, entry point, code version, git commit and dirty flag, data URI and digests.
    """
    tags = run.data.tags
    digests = dataset_digests(run)
    values = {
        "lineage.training_run_id": run.info.run_id,
        "lineage.entry_point": tags.get(TAG_ENTRY_POINT, ""),
        "lineage.code_version": tags.get(TAG_CODE_VERSION, ""),
        "lineage.git_commit": tags.get("mlflow.source.git.commit", ""),
        "lineage.git_dirty": tags.get(TAG_GIT_DIRTY, ""),
        "lineage.data_uri": redact_source(run.data.params.get("data_path", "")),
        "lineage.train_digest": digests.get("training", ""),
        "lineage.test_digest": digests.get("testing", ""),
    }
    return {name: value for name, value in values.items() if value}


def declared_parameters(mlproject: Mapping, entry_point: str) -> list[str]:
    """The parameter names an MLproject declares for an entry point."""
    return list((mlproject.get("entry_points", {}).get(entry_point, {}) or {}).get("parameters", {}) or {})


def recorded_parameter(value: str) -> str:
    """A project parameter as it was passed: MLflow logs string parameters shell-quoted
    (an empty one as ``''``)."""
    import shlex

    try:
        tokens = shlex.split(value)
    except ValueError:
        return value
    if not tokens:
        return ""
    return tokens[0] if len(tokens) == 1 else value


def check_tolerance(tolerance: float) -> float:
    """A usable metric tolerance: a finite number of at least 0."""
    import math

    if not math.isfinite(tolerance) or tolerance < 0:
        raise PipelineError(f"tolerance is {tolerance:g}; expected a number of at least 0 (0 means identical metrics)")
    return tolerance


def compare_metrics(recorded: Mapping[str, float], rerun: Mapping[str, float], tolerance: float) -> tuple[bool, list[str]]:
    """Compare the test metrics of two runs.

    Args:
        recorded: the original run's metrics.
        rerun: the reproduction's metrics.
        tolerance: the largest absolute difference still called a match (0 means identical).

    Returns:
        (whether every recorded ``test_*`` metric matches, one line per metric).
    """
    lines, match = [], True
    names = sorted(name for name in recorded if name.startswith("test_"))
    for name in names:
        before, after = recorded[name], rerun.get(name)
        same = after is not None and abs(after - before) <= tolerance
        match = match and same
        shown = "missing" if after is None else f"{after:.6f}"
        lines.append(f"{name}: recorded {before:.6f}, rerun {shown} -> {'same' if same else 'DIFFERENT'}")
    return match and bool(names), lines
