"""`process -P engine=spark`: validate and split a table on a cluster, and write train and test
Parquet where every executor can read them; the run records their URIs, digests, schema and profile."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from tabular_pipeline.errors import PipelineError

SPLITS_FILE = "splits.json"
# Rows brought to the driver to describe the table (schema, profile) and as the request example.
SAMPLE_ROWS = 5000
log = logging.getLogger("process")


def split_destination(split_path: str, artifact_uri: str, run_id: str, master: str) -> str:
    """Where the splits are written: `<split_path>/<run_id>`, or by default inside the run's own
    artifacts when every executor can write there: an `s3://` store, or a local one (a plain path
    or `file://`) for executors on this machine. Nothing is ever written outside the run unless
    `split_path` says where.

    Raises:
        PipelineError: the run's artifacts are not a place the executors can write (a tracking
            server's artifact proxy, or a local folder with a remote cluster).
    """
    from urllib.parse import urlparse

    from tabular_pipeline.spark.session import is_local_master
    from tabular_pipeline.spark.tables import spark_uri

    if split_path.strip():
        return spark_uri(split_path).rstrip("/") + f"/{run_id}"
    scheme = urlparse(artifact_uri).scheme
    if scheme == "s3" or (scheme in ("", "file") and is_local_master(master)):
        return spark_uri(artifact_uri).rstrip("/") + "/processed/data"
    where = "a folder on this machine" if scheme in ("", "file") else f"{scheme}: (the tracking server's proxy)"
    raise PipelineError(
        f"the run's artifacts are {where}, which executors of {master} cannot write; set -P split_path to a "
        "folder every executor reads (a local folder for local[*], hdfs://..., s3a://bucket/prefix)"
    )


def check_apart(split_uri: str, data_uri: str) -> None:
    """Refuse a split folder inside the input (a later run would read earlier splits as data) or
    an input inside the split folder."""
    import re

    # A glob reads everything under its literal part: /data/tables/*.parquet covers /data/tables/.
    literal = re.split(r"[*?\[{]", data_uri, maxsplit=1)[0]
    literal = literal if literal == data_uri else literal.rsplit("/", 1)[0]
    inner, outer = split_uri.rstrip("/") + "/", literal.rstrip("/") + "/"
    if inner.startswith(outer) or outer.startswith(inner):
        raise PipelineError(
            f"the splits ({split_uri}) and data_path {data_uri} overlap; expected the splits outside the input "
            "table (set -P split_path elsewhere)"
        )


def process_with_spark(
    data_path: str, label_column: str, test_size: float, seed: int, task: str, master: str, split_path: str, run
) -> dict:
    """Validate, split and write the table; log the hand-over file, schema and profile.

    A Spark or JVM failure ends the step in one line; split folders already written are removed.

    Returns:
        What `splits.json` records: engine, task, label column, and the train and test URIs with
        their digests and row counts.
    """
    import mlflow
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    from tabular_pipeline.spark.session import spark_failure, start_session, stop_session
    from tabular_pipeline.spark.tables import delete_folder, spark_uri

    if data_path.strip().startswith(("runs:/", "models:/", "mlflow-artifacts:")):
        raise PipelineError(
            f"data_path {data_path} is an MLflow URI; with -P engine=spark expected a path Spark reads "
            "(a local path, file://, hdfs://, s3a://)"
        )
    source = spark_uri(data_path)
    destination = split_destination(split_path, mlflow.get_artifact_uri(), run.info.run_id, master)
    check_apart(destination, source)
    spark = start_session(master, "tabular-pipeline-process")
    try:
        record = split_and_write(spark, source, label_column, test_size, seed, task, destination)
    except BaseException as error:  # any failure, a stop (SIGTERM, Ctrl-C) included: remove what was written
        try:
            delete_folder(spark, destination)
        except (PySparkException, Py4JError) as cleanup:
            log.warning("could not remove the partial splits at %s: %s", destination, spark_failure(cleanup, "removal"))
        if isinstance(error, (PySparkException, Py4JError)):
            raise spark_failure(error, "process") from None
        raise
    finally:
        stop_session(spark)
    log.info(
        "%s task; %d train and %d test rows written to %s",
        record["task"],
        record["train"]["rows"],
        record["test"]["rows"],
        destination,
    )
    return record


def split_and_write(
    spark, source: str, label_column: str, test_size: float, seed: int, task: str, destination: str
) -> dict:
    """Read, check, split and write; log `processed/` (splits.json, schema.json, profile.json)."""
    import mlflow

    from tabular_pipeline.data.profiles import profile_table, table_schema
    from tabular_pipeline.spark.tables import (
        check_class_count,
        harmonise_columns,
        list_data_files,
        listing_digest,
        read_frame,
        resolve_task,
        sample_rows,
        split_frame,
        validate_frame,
        write_parquet,
    )

    frame, source_files = read_frame(spark, source)
    validate_frame(frame, label_column, Path(source).name or source)
    frame = harmonise_columns(frame, label_column)
    resolved = resolve_task(frame, label_column, task)
    if resolved != "regression":
        check_class_count(frame, label_column)
    train, test = split_frame(frame, label_column, test_size, seed, resolved)
    record = {
        "engine": "spark",
        "task": resolved,
        "label_column": label_column,
        "source": source,
        "source_digest": listing_digest(source_files),
    }
    for name, part in (("train", train), ("test", test)):
        uri = f"{destination}/{name}"
        write_parquet(part, uri)
        record[name] = {
            "uri": uri,
            "digest": listing_digest(list_data_files(spark, uri)),
            "rows": spark.read.parquet(uri).count(),
        }
    if record["test"]["rows"] == 0 or record["train"]["rows"] == 0:
        raise PipelineError(
            f"the split left {record['train']['rows']} train and {record['test']['rows']} test rows; "
            "expected rows on both sides (more rows, or another test_size)"
        )
    sample = sample_rows(spark.read.parquet(record["train"]["uri"]), SAMPLE_ROWS, seed, total=record["train"]["rows"])
    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch)
        (staging / SPLITS_FILE).write_text(json.dumps(record, indent=2))
        (staging / "schema.json").write_text(json.dumps(table_schema(sample, label_column, resolved), indent=2))
        profile = {
            "train_sample": profile_table(sample, label_column),
            "train_rows": record["train"]["rows"],
            "test_rows": record["test"]["rows"],
        }
        (staging / "profile.json").write_text(json.dumps(profile, indent=2))
        mlflow.log_artifacts(str(staging), "processed")
    return record


def load_split_record(processed_uri: str) -> dict | None:
    """The `splits.json` of a Spark `process` run, or None when the run was processed by pandas."""
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as scratch:
        try:
            path = mlflow.artifacts.download_artifacts(f"{processed_uri.rstrip('/')}/{SPLITS_FILE}", dst_path=scratch)
        except (MlflowException, OSError):
            return None
        return json.loads(Path(path).read_text())
