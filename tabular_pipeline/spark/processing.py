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


def is_local_master(master: str) -> bool:
    """Whether every executor runs on this machine (a local session, or a loopback cluster)."""
    return master.startswith("local") or any(
        master.startswith(f"spark://{host}") for host in ("127.0.0.1", "localhost")
    )


def split_destination(split_path: str, artifact_uri: str, run_id: str, master: str) -> str:
    """Where the splits are written: `<split_path>/<run_id>`; by default inside the run's own
    artifacts when Spark can write there (a local, `file://` or `s3://` store), else, for executors on
    this machine, under `~/.cache/tabular-pipeline/spark-splits/<run_id>`.

    Raises:
        PipelineError: no location every executor can read is known (a remote cluster with the
            tracking server's artifact proxy).
    """
    from tabular_pipeline.spark.tables import spark_uri

    if split_path.strip():
        return spark_uri(split_path).rstrip("/") + f"/{run_id}"
    from urllib.parse import urlparse

    if urlparse(artifact_uri).scheme in ("", "file", "s3"):
        return spark_uri(artifact_uri).rstrip("/") + "/processed/data"
    if is_local_master(master):
        return (Path.home() / ".cache" / "tabular-pipeline" / "spark-splits" / run_id).as_uri()
    raise PipelineError(
        f"the run's artifacts ({artifact_uri.split(':')[0]}:) are not readable by executors of {master}; "
        "set -P split_path to a location every executor reads (hdfs://..., s3a://bucket/prefix)"
    )


def process_with_spark(
    data_path: str, label_column: str, test_size: float, seed: int, task: str, master: str, split_path: str, run
) -> dict:
    """Validate, split and write the table; log the hand-over file, schema and profile.

    Returns:
        What `splits.json` records: engine, task, label column, and the train and test URIs with
        their digests and row counts.
    """
    import mlflow

    from tabular_pipeline.data.profiles import profile_table, table_schema
    from tabular_pipeline.spark.session import start_session
    from tabular_pipeline.spark.tables import (
        harmonise_columns,
        list_data_files,
        listing_digest,
        read_frame,
        resolve_task,
        sample_rows,
        spark_uri,
        split_frame,
        validate_frame,
        write_parquet,
    )

    spark = start_session(master, "tabular-pipeline-process")
    try:
        source = spark_uri(data_path)
        frame, source_files = read_frame(spark, source)
        validate_frame(frame, label_column, Path(source).name or source)
        frame = harmonise_columns(frame, label_column)
        resolved = resolve_task(frame, label_column, task)
        train, test = split_frame(frame, label_column, test_size, seed, resolved)
        destination = split_destination(split_path, mlflow.get_artifact_uri(), run.info.run_id, master)
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
            written = spark.read.parquet(uri)
            record[name] = {"uri": uri, "digest": listing_digest(list_data_files(spark, uri)), "rows": written.count()}
        if record["test"]["rows"] == 0 or record["train"]["rows"] == 0:
            raise PipelineError(
                f"the split left {record['train']['rows']} train and {record['test']['rows']} test rows; "
                "expected rows on both sides (more rows, or another test_size)"
            )
        sample = sample_rows(spark.read.parquet(record["train"]["uri"]), SAMPLE_ROWS, seed)
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
    finally:
        spark.stop()
    log.info(
        "%s task; %d train and %d test rows written to %s",
        resolved,
        record["train"]["rows"],
        record["test"]["rows"],
        destination,
    )
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
