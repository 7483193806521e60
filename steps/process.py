"""Entry point `process`: validate the raw table, split it, and log train/test as Parquet."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import click

from tabular_pipeline.data.profiles import profile_table, table_schema
from tabular_pipeline.data.sources import fetch_table
from tabular_pipeline.data.splits import Splits, prepare_splits
from tabular_pipeline.engines import check_engine
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.orchestration.fingerprints import digest_path
from tabular_pipeline.orchestration.step_runs import TAG_OUTPUT_DIGEST, TAG_OUTPUT_URI, TAG_TASK, run_step
from tabular_pipeline.parameters.entry_points import entry_point_options
from tabular_pipeline.registry.lineage import TAG_DATA_SOURCE, upstream_source
from tabular_pipeline.spark.session import check_master

PROCESSED_ARTIFACT_PATH = "processed"
log = logging.getLogger("process")


def process_on_spark(options: dict, run) -> None:
    """Split the table on Spark (`-P engine=spark`) and tag the run with its hand-over URI."""
    import hashlib

    import mlflow

    from tabular_pipeline.spark.processing import process_with_spark

    record = process_with_spark(
        options["data_path"],
        options["label_column"],
        options["test_size"],
        options["seed"],
        options["task"],
        check_master(options["spark_master"]),
        options["split_path"],
        run,
    )
    digests = f"{record['train']['digest']}:{record['test']['digest']}"
    mlflow.log_metrics({"train_rows": record["train"]["rows"], "test_rows": record["test"]["rows"]})
    mlflow.set_tags(
        {
            TAG_OUTPUT_URI: f"runs:/{run.info.run_id}/{PROCESSED_ARTIFACT_PATH}",
            TAG_OUTPUT_DIGEST: "sha256:" + hashlib.sha256(digests.encode()).hexdigest(),
            TAG_TASK: record["task"],
            TAG_DATA_SOURCE: record["source"],
            "pipeline.engine": "spark",
            "pipeline.split_uri": record["train"]["uri"].rsplit("/", 1)[0],
        }
    )


def process_table(data_path: str, label_column: str, test_size: float, seed: int, task: str, run) -> None:
    """Load and validate the table, split it, and log the splits with a schema and a profile."""
    import mlflow

    source = upstream_source(data_path)
    # A `runs:/` input is a step's copy (download's Parquet): messages also name the user's table.
    origin = source if data_path.startswith("runs:/") and source != data_path else ""
    with tempfile.TemporaryDirectory() as scratch:
        location = fetch_table(data_path, Path(scratch))
        splits, resolved_task = prepare_splits(location, label_column, test_size, seed, task, origin)
    output_digest = log_splits(splits, label_column, resolved_task)
    output_uri = f"runs:/{run.info.run_id}/{PROCESSED_ARTIFACT_PATH}"
    mlflow.set_tags(
        {
            TAG_OUTPUT_URI: output_uri,
            TAG_OUTPUT_DIGEST: output_digest,
            TAG_TASK: resolved_task,
            TAG_DATA_SOURCE: source,
        }
    )
    log.info(
        "%s task; %d train and %d test rows logged at %s",
        resolved_task,
        len(splits.train),
        len(splits.test),
        output_uri,
    )


def log_splits(splits: Splits, label_column: str, task: str) -> str:
    """Log the splits as Parquet with their schema and profile under `processed/`, and their row
    counts, in the active run; returns the digest of what was logged.

    The pipeline-overhead benchmark's same-work script calls this too.
    """
    import mlflow

    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch) / PROCESSED_ARTIFACT_PATH
        staging.mkdir()
        splits.train.to_parquet(staging / "train.parquet", index=False)
        splits.test.to_parquet(staging / "test.parquet", index=False)
        (staging / "schema.json").write_text(json.dumps(table_schema(splits.train, label_column, task), indent=2))
        profile = {"train": profile_table(splits.train, label_column), "test": profile_table(splits.test, label_column)}
        (staging / "profile.json").write_text(json.dumps(profile, indent=2))
        output_digest = digest_path(staging)
        mlflow.log_artifacts(str(staging), PROCESSED_ARTIFACT_PATH)
    mlflow.log_metrics(
        {"train_rows": len(splits.train), "test_rows": len(splits.test), "feature_count": splits.train.shape[1] - 1}
    )
    return output_digest


def process_with_engine(options: dict, run) -> None:
    """Run the split on the engine the options name."""
    engine = check_engine(options["engine"])
    if engine == "spark":
        process_on_spark(options, run)
    elif options["split_path"].strip():
        raise PipelineError("split_path is used only with -P engine=spark; expected it empty for the pandas engine")
    else:
        keys = ("data_path", "label_column", "test_size", "seed", "task")
        process_table(*[options[key] for key in keys], run)


# Help lines for `--help`; names, types and defaults come from MLproject.
HELP = {
    "data_path": "A .csv file, a folder with train.csv and test.csv, or a run URI from download.",
    "label_column": "The target column.",
    "test_size": "Test size.",
    "seed": "Seed.",
    "task": "auto, binary, multiclass or regression.",
    "engine": "pandas (one process) or spark (a cluster, or a local session).",
    "spark_master": "With engine=spark: local[*], spark://host:port, yarn or k8s://...",
    "split_path": "With engine=spark: where the train/test Parquet go (file://, hdfs://, s3a://); "
    "default: the run's artifacts when Spark can write there.",
}


@click.command()
@entry_point_options("process", HELP)
def process(**options) -> None:
    """Validate and split a table into train and test Parquet files."""
    run_step("process", lambda run: process_with_engine(options, run))


if __name__ == "__main__":
    process()
