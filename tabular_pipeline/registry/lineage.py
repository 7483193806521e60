"""What a model version carries so it can be rebuilt: the training run, its entry point and
parameters, the code (git commit and whether the tree was dirty), and the data digests. The model
itself records its environment (python_env.yaml, requirements.txt)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pandas as pd

from tabular_pipeline.data.uris import redact_source
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.orchestration.fingerprints import code_version
from tabular_pipeline.orchestration.step_runs import TAG_CODE_VERSION, TAG_ENTRY_POINT
from tabular_pipeline.paths import PROJECT_DIR

TAG_GIT_DIRTY = "pipeline.git_dirty"
# The original table (file, URL or URI, without credentials or signature) a run's data came from.
TAG_DATA_SOURCE = "pipeline.data_source"
TRAINING_ENTRY_POINTS = ("train_basic", "train_automl")
log = logging.getLogger("lineage")


def upstream_source(data_path: str) -> str:
    """The table a step's input came from, as it may be recorded: for a `runs:/` URI, the
    `pipeline.data_source` of the step that wrote it; otherwise the path or URL itself, without a
    signature."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if data_path.startswith("runs:/"):
        try:
            tags = MlflowClient().get_run(data_path[len("runs:/") :].split("/", 1)[0]).data.tags
        except MlflowException:
            return data_path
        return tags.get(TAG_DATA_SOURCE, data_path)
    return redact_source(data_path)


def record_training_inputs(train: pd.DataFrame, test: pd.DataFrame, label: str, data_path: str) -> None:
    """Log the splits as the run's datasets (with digests), where they came from, the code that
    trains on them, and the training profile and a request example for the model card."""
    from tabular_pipeline.registry.datasets import log_dataset, pandas_dataset

    log_dataset(pandas_dataset(train, name="train", targets=label), context="training")
    log_dataset(pandas_dataset(test, name="test", targets=label), context="testing")
    log_training_row_hashes(train)
    record_training_context(train, label, data_path)


def log_training_row_hashes(train: pd.DataFrame) -> None:
    """Log the fingerprints of the training rows (`evaluation/train_rows.parquet`): a later gate
    reads them to leave out of a challenger's test split every row this model trained on."""
    import tempfile
    from pathlib import Path

    import mlflow
    import pyarrow.parquet as pq

    from tabular_pipeline.data.row_hashes import hash_table
    from tabular_pipeline.evaluation.artifacts import EVALUATION_ARTIFACT_PATH, TRAIN_ROWS_FILE

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / TRAIN_ROWS_FILE
        pq.write_table(hash_table(train), path)
        mlflow.log_artifact(str(path), EVALUATION_ARTIFACT_PATH)


def record_training_context(train: pd.DataFrame, label: str, data_path: str) -> None:
    """Tag where the data came from and the code that trains on it, and log the training profile
    and a request example for the model card (`train` may be a sample of the split)."""
    import json

    import mlflow

    from tabular_pipeline.data.profiles import profile_table
    from tabular_pipeline.evaluation.card import PROFILE_FILE, REQUEST_FILE

    code = code_version(PROJECT_DIR)
    mlflow.set_tags(
        {
            TAG_CODE_VERSION: code,
            TAG_GIT_DIRTY: str(not is_clean_commit(code)).lower(),
            TAG_DATA_SOURCE: upstream_source(data_path),
        }
    )
    mlflow.log_dict(profile_table(train, label), PROFILE_FILE)
    example = json.loads(train.drop(columns=[label]).head(2).to_json(orient="records"))
    mlflow.log_dict({"dataframe_records": example}, REQUEST_FILE)


def is_clean_commit(code: str) -> bool:
    """Whether a code version names a plain git commit (no uncommitted changes, inside git)."""
    return len(code) == 40 and all(char in "0123456789abcdef" for char in code)


def dataset_digests(run) -> dict[str, str]:
    """The digests of a run's logged datasets by context (``training``, ``testing``, ``raw``)."""
    digests = {}
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        context = next(
            (tag.value for tag in dataset_input.tags if tag.key == "mlflow.data.context"), dataset_input.dataset.name
        )
        digests[context] = dataset_input.dataset.digest
    return digests


def lineage_record(run) -> dict[str, str]:
    """What points back at everything the training run used: run, entry point, code (version, git
    commit, dirty flag), data (source, the step's input URI, split digests).

    Args:
        run: the training run (a `mlflow.entities.Run`).

    Returns:
        The record; empty values are left out.
    """
    tags = run.data.tags
    digests = dataset_digests(run)
    values = {
        "training_run_id": run.info.run_id,
        "entry_point": tags.get(TAG_ENTRY_POINT, ""),
        "code_version": tags.get(TAG_CODE_VERSION, ""),
        "git_commit": tags.get("mlflow.source.git.commit", ""),
        "git_dirty": tags.get(TAG_GIT_DIRTY, ""),
        "data_source": tags.get(TAG_DATA_SOURCE, ""),
        "data_uri": redact_source(run.data.params.get("data_path", "")),
        "train_digest": digests.get("training", ""),
        "test_digest": digests.get("testing", ""),
    }
    return {name: value for name, value in values.items() if value}


def lineage_tags(run) -> dict[str, str]:
    """The lineage record as one model-version tag, `lineage` (JSON)."""
    import json

    return {"lineage": json.dumps(lineage_record(run), sort_keys=True)}


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


def compare_metrics(
    recorded: Mapping[str, float], rerun: Mapping[str, float], tolerance: float
) -> tuple[bool, list[str]]:
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
