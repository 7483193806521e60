"""The registry look-ups behind a gate decision: the training run behind a model URI, the test rows
that run kept, and which of those rows another model was trained on."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator

import numpy as np
import pandas as pd

from tabular_pipeline.errors import PipelineError, one_line
from tabular_pipeline.evaluation.artifacts import EVALUATION_ARTIFACT_PATH, TEST_SPLIT_FILE, TRAIN_ROWS_FILE
from tabular_pipeline.registry.model_uris import parse_model_uri, registered_version

# The most rows of a training split hashed at a time (a Spark split may hold millions).
HASH_BATCH_ROWS = 250_000


class EvidenceUnavailable(Exception):
    """A figure the gate needs cannot be established; the message says why, in one line."""


def training_run_of(client, model_uri: str):
    """The training run behind any model URI: a logged model, a run's model, or a registered
    version (``models:/<name>/<version>``, ``models:/<name>/<stage>``, ``models:/<name>@<alias>``)."""
    from mlflow.exceptions import MlflowException

    kind, identifier, _ = parse_model_uri(model_uri)
    try:
        if kind == "registered":
            version = registered_version(client, model_uri)
            if version.run_id:
                return client.get_run(version.run_id)
            kind, identifier, _ = parse_model_uri(version.source)
        if kind == "logged":
            return client.get_run(client.get_logged_model(identifier).source_run_id)
        if kind == "run":
            return client.get_run(identifier)
    except MlflowException as error:
        raise PipelineError(
            f"the training run behind {model_uri} could not be read ({one_line(error, 200)}); expected a model "
            "logged by train_basic or train_automl"
        ) from None
    raise PipelineError(f"{model_uri} names no training run; expected a model logged by train_basic or train_automl")


def kept_test_split(run) -> pd.DataFrame:
    """The test rows a training run kept for the gate (`evaluation/test.parquet`)."""
    import mlflow

    uri = f"runs:/{run.info.run_id}/{EVALUATION_ARTIFACT_PATH}/{TEST_SPLIT_FILE}"
    try:
        with tempfile.TemporaryDirectory() as scratch:
            return pd.read_parquet(mlflow.artifacts.download_artifacts(uri, dst_path=scratch))
    except Exception as error:  # noqa: BLE001 - any failure means the rows are not there to score on
        raise EvidenceUnavailable(f"its test split {uri} could not be read ({one_line(error, 200)})") from None


def training_digest(run) -> str:
    """The digest of the training split a run recorded as its `training` dataset ("" if none)."""
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        if any(tag.key == "mlflow.data.context" and tag.value == "training" for tag in dataset_input.tags):
            return dataset_input.dataset.digest
    return ""


def rows_seen_in_training(run, test: pd.DataFrame) -> np.ndarray:
    """Which rows of `test` are in the training split of `run` (matched by `data.row_hashes` over
    the columns that split had, label included).

    Raises:
        EvidenceUnavailable: the training split cannot be found or read, or its columns are not
            comparable with `test`'s.
    """
    from tabular_pipeline.data.row_hashes import column_kinds, row_hashes

    kinds, batches = training_row_hashes(run)
    missing = sorted(set(kinds) - set(map(str, test.columns)))
    if missing:
        raise EvidenceUnavailable(
            f"it was trained on columns the candidate's test split lacks ({', '.join(missing[:5])}), so which rows "
            "it saw cannot be told"
        )
    found = column_kinds(test[list(kinds)])
    differ = [name for name in kinds if found[name] != kinds[name] and test[name].notna().any()]
    if differ:
        name = differ[0]
        raise EvidenceUnavailable(
            f"column '{name}' holds {kinds[name]}s in its training split and {found[name]}s in the candidate's test "
            "split, so which rows it saw cannot be told"
        )
    candidate = row_hashes(test, kinds)
    seen = np.zeros(len(test), dtype=bool)
    for hashes in batches:
        seen |= np.isin(candidate, hashes)
    return seen


def training_row_hashes(run) -> tuple[dict[str, str], Iterator[np.ndarray]]:
    """The columns (with their kinds) and the row hashes of a run's training split, from the first
    place that has them: the run's `evaluation/train_rows.parquet`; else the split of the `process`
    run it trained on (pandas: `processed/train.parquet`; Spark: the Parquet folder `splits.json`
    names, checked unchanged)."""
    import mlflow

    from tabular_pipeline.data.row_hashes import column_kinds, recorded_kinds, row_hashes
    from tabular_pipeline.registry.lineage import recorded_parameter

    run_id = run.info.run_id
    with tempfile.TemporaryDirectory() as scratch:
        try:
            path = mlflow.artifacts.download_artifacts(
                f"runs:/{run_id}/{EVALUATION_ARTIFACT_PATH}/{TRAIN_ROWS_FILE}", dst_path=scratch
            )
        except Exception:  # noqa: BLE001 - logged before this file existed: look for the split itself
            path = None
        if path:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            kinds = recorded_kinds(table.schema)
            if kinds:
                return kinds, iter([table.column(0).to_numpy()])
    data_path = recorded_parameter(run.data.params.get("data_path", ""))
    if not data_path.startswith("runs:/"):
        raise EvidenceUnavailable(
            f"its training run {run_id} recorded neither its training rows nor a process run's split (it trained on "
            f"{data_path or 'an unrecorded table'} directly)"
        )
    from tabular_pipeline.spark.processing import load_split_record

    record = load_split_record(data_path)
    if record is not None:
        return spark_split_hashes(record["train"]["uri"], record["train"]["digest"])
    try:
        with tempfile.TemporaryDirectory() as scratch:
            uri = f"{data_path.rstrip('/')}/train.parquet"
            train = pd.read_parquet(mlflow.artifacts.download_artifacts(uri, dst_path=scratch))
    except Exception as error:  # noqa: BLE001 - the split is gone or unreadable: the gate fails closed
        raise EvidenceUnavailable(
            f"its training split {data_path}/train.parquet could not be read ({one_line(error, 200)})"
        ) from None
    kinds = column_kinds(train)
    return kinds, iter([row_hashes(train, kinds)])


def spark_split_hashes(uri: str, digest: str) -> tuple[dict[str, str], Iterator[np.ndarray]]:
    """The row hashes of a Parquet split folder that Spark wrote, read with pyarrow in batches
    (local folders and S3; no Spark session), after checking it is unchanged since it was written."""
    import pyarrow.dataset as ds

    from tabular_pipeline.data.row_hashes import row_hashes

    try:
        filesystem, path = split_filesystem(uri)
        dataset = ds.dataset(path, filesystem=filesystem, format="parquet")
        files = [filesystem.get_file_info(file) for file in dataset.files]
    except Exception as error:  # noqa: BLE001 - any failure to reach it means it cannot be used
        raise EvidenceUnavailable(f"its training split {uri} could not be read here ({one_line(error, 200)})") from None
    if split_listing_digest(files) != digest:
        raise EvidenceUnavailable(f"its training split {uri} is gone or has changed since process wrote it")
    kinds = arrow_kinds(dataset.schema)

    def batches() -> Iterator[np.ndarray]:
        for batch in dataset.to_batches(columns=list(kinds), batch_size=HASH_BATCH_ROWS):
            yield row_hashes(batch.to_pandas(), kinds)

    return kinds, batches()


def split_filesystem(uri: str):
    """A pyarrow filesystem and path for a split URI: `file://`, or `s3a://`/`s3://` with the
    endpoint and credentials the environment gives MLflow and boto3."""
    import os

    from pyarrow import fs

    if uri.startswith(("s3a://", "s3://")):
        bucket_path = uri.split("://", 1)[1]
        endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        return fs.S3FileSystem(endpoint_override=endpoint) if endpoint else fs.S3FileSystem(), bucket_path
    return fs.FileSystem.from_uri(uri)


def split_listing_digest(files) -> str:
    """`spark.tables.listing_digest` of pyarrow file infos (names, sizes, modification times in ms)."""
    from tabular_pipeline.spark.tables import DataFile, listing_digest

    listed = [DataFile(info.path, int(info.size), int(info.mtime_ns // 1_000_000)) for info in files]
    return listing_digest(sorted(listed, key=lambda f: f.uri))


def arrow_kinds(schema) -> dict[str, str]:
    """Column kinds (`data.row_hashes`) from an Arrow schema: numbers, and text for the rest."""
    import pyarrow as pa

    from tabular_pipeline.data.row_hashes import NUMBER, TEXT

    def kind(field) -> str:
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type) or pa.types.is_decimal(field.type)
        return NUMBER if numeric else TEXT

    return {field.name: kind(field) for field in schema}


def recorded_digests(client, champion_version, candidate_run) -> tuple[str, str]:
    """The training-split digests of the champion (from its version's lineage, else its run) and
    of the candidate's run."""
    champion = json.loads((champion_version.tags or {}).get("lineage", "{}")).get("train_digest", "")
    if not champion and champion_version.run_id:
        champion = training_digest(client.get_run(champion_version.run_id))
    return champion, training_digest(candidate_run)
