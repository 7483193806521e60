"""`train_basic -P engine=spark`: fit on the cluster, evaluate there, and log the model exported
to the pandas engine's pyfunc (it serves without Spark or Java)."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.spark.processing import SAMPLE_ROWS, load_split_record

log = logging.getLogger("train_basic")
# The test rows kept with the run for `register` to score a champion on: the whole split up to this
# size, else a seeded sample (then the gate scores the candidate on the same sample).
GATE_ROWS = 200_000


@dataclass(frozen=True)
class SparkSplits:
    """Train and test frames on the cluster, where they came from, and their digests."""

    train: object
    test: object
    task: str
    train_digest: str
    test_digest: str
    source: str
    train_rows: int
    test_rows: int


def load_splits(spark, data_path: str, label_column: str, test_size: float, seed: int, task: str) -> SparkSplits:
    """The splits of a Spark `process` run (`runs:/<id>/processed`), or of a raw table split here."""
    from tabular_pipeline.spark import tables

    if data_path.startswith("runs:/"):
        record = load_split_record(data_path)
        if record is None:
            raise PipelineError(
                f"{data_path} was not processed with -P engine=spark; expected the output of a Spark process run, "
                "or a table path"
            )
        if record["label_column"] != label_column:
            raise PipelineError(
                f"{data_path} was split for label column '{record['label_column']}', not '{label_column}'; "
                "expected the same label_column as process"
            )
        for side in ("train", "test"):
            check_split_unchanged(spark, record[side]["uri"], record[side]["digest"], data_path)
        train, test = spark.read.parquet(record["train"]["uri"]), spark.read.parquet(record["test"]["uri"])
        return SparkSplits(
            train,
            test,
            record["task"],
            record["train"]["digest"],
            record["test"]["digest"],
            record["source"],
            record["train"]["rows"],
            record["test"]["rows"],
        )
    source = tables.spark_uri(data_path)
    frame, files = tables.read_frame(spark, source)
    tables.validate_frame(frame, label_column, Path(source).name or source)
    frame = tables.harmonise_columns(frame, label_column)
    workers = spark.sparkContext.defaultParallelism
    # Spark reads a table under about 128 MB per core as one range per core, and a range may hold
    # every row (a file of one row group, as pandas writes up to 1M rows) while the others are empty.
    spread = frame.rdd.getNumPartitions() <= workers
    resolved = tables.resolve_task(frame, label_column, task)
    if resolved != "regression":
        tables.check_class_count(frame, label_column)
    train, test = tables.split_frame(frame, label_column, test_size, seed, resolved)
    base = f"{tables.listing_digest(files)}:{test_size}:{seed}:{resolved}"
    digest = {
        side: "split-sha256:" + hashlib.sha256(f"{base}:{side}".encode()).hexdigest() for side in ("train", "test")
    }
    if spread:
        # Round-robin, so each XGBoost worker trains on a share; one shuffle per side, which the
        # counts below absorb as they fill the caches (the split hashes rows, not positions).
        train, test = train.repartition(workers), test.repartition(workers)
    train, test = train.cache(), test.cache()
    # Counting fills the caches the fit and the evaluation read anyway.
    return SparkSplits(train, test, resolved, digest["train"], digest["test"], source, train.count(), test.count())


def check_split_unchanged(spark, uri: str, digest: str, data_path: str) -> None:
    """Refuse a split folder that is gone or was rewritten since `process` recorded it (one listing)."""
    from tabular_pipeline.spark.tables import list_data_files, listing_digest

    try:
        files = list_data_files(spark, uri)
    except PipelineError:
        raise PipelineError(
            f"the split {uri} recorded by {data_path} is gone; expected it in place (run process again; main: "
            "-P use_cache=false)"
        ) from None
    if listing_digest(files) != digest:
        raise PipelineError(
            f"the split {uri} recorded by {data_path} has changed since process wrote it; expected it unchanged "
            "(run process again; main: -P use_cache=false)"
        )


def log_search(search) -> None:
    """The grid search's table (`search/cv_results.csv`), best score and best settings."""
    import mlflow

    from tabular_pipeline.training.run_records import log_prefixed_params

    with tempfile.TemporaryDirectory() as scratch:
        search.table.to_csv(Path(scratch) / "cv_results.csv", index=False)
        mlflow.log_artifact(str(Path(scratch) / "cv_results.csv"), "search")
    mlflow.log_metric("cv_best_score", search.best_score)
    log_prefixed_params("best", search.best)
    log.info("best parameters %s (cv score %.4f)", search.best, search.best_score)


def log_evaluation_on_cluster(
    cluster_model, exported, test, prepared_test, label_column: str, task: str, class_count: int, seed: int, rows: int
) -> tuple[dict[str, float], dict]:
    """Metrics over the whole test split on the cluster; plots, importance and the gate's rows from
    a sample scored by the exported model, whose answer also gives the performance section of the
    model's monitoring profile (returned with the metrics)."""
    import mlflow

    from tabular_pipeline.evaluation.artifacts import TAG_GATE_SAMPLE
    from tabular_pipeline.evaluation.importance import permutation_importance_table
    from tabular_pipeline.evaluation.metrics import scoring_for_task
    from tabular_pipeline.evaluation.report import log_evaluation_artifacts
    from tabular_pipeline.monitoring.calibration import performance_profile
    from tabular_pipeline.serving.model import probability_frame
    from tabular_pipeline.spark.evaluation import cluster_metrics
    from tabular_pipeline.spark.tables import sample_rows

    scored = cluster_model.score(prepared_test).persist()
    try:
        metrics = cluster_metrics(scored, task, class_count)
    finally:
        scored.unpersist()
    mlflow.log_metrics(metrics)
    sample = sample_rows(test, GATE_ROWS, seed, total=rows)
    if len(sample) < rows:
        mlflow.set_tag(TAG_GATE_SAMPLE, f"{len(sample)} of {rows} rows")
    features, label = sample.drop(columns=[label_column]), sample[label_column]
    output = probability_frame(exported, features) if task != "regression" else exported.predict(features)
    try:
        importance = permutation_importance_table(exported, features, label, scoring_for_task(task), seed)
    except ValueError as error:  # e.g. ROC AUC on a sample holding one class only
        log.warning("permutation importance skipped: %s", error)
        importance = None
    log_evaluation_artifacts(output, sample, label_column, task, importance)
    log.info(
        "test metrics on the cluster (%d rows): %s",
        rows,
        ", ".join(f"{name}={value:.4f}" for name, value in metrics.items()),
    )
    # The exported model's answer on the gate's rows calibrates predict's performance estimates.
    return metrics, performance_profile(output, label, task, label_column, metrics)


def train_with_spark(options: dict, algorithm: str, hyperparameters: dict) -> None:
    """Fit, evaluate and log a model on Spark, described by the step's options."""
    import mlflow
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    from tabular_pipeline.evaluation.card import log_card
    from tabular_pipeline.monitoring.profile import training_profile
    from tabular_pipeline.orchestration.step_runs import TAG_OUTPUT_URI, TAG_TASK
    from tabular_pipeline.parameters.hyperparameters import split_search_space, validate_hyperparameters
    from tabular_pipeline.registry.lineage import record_training_context
    from tabular_pipeline.spark.algorithms import (
        allowed_hyperparameters,
        check_spark_algorithm,
        check_spark_hyperparameters,
    )
    from tabular_pipeline.spark.datasets import log_spark_datasets
    from tabular_pipeline.spark.fitting import fit_on_cluster, prepare
    from tabular_pipeline.spark.session import check_master, spark_failure, start_session, stop_session
    from tabular_pipeline.spark.tables import sample_rows
    from tabular_pipeline.training.model_logging import log_pipeline_model
    from tabular_pipeline.training.run_records import log_prefixed_params, log_screening

    label, seed = options["label_column"], options["seed"]
    # What can be refused without the data is refused before a JVM starts; the task comes later.
    check_spark_algorithm(algorithm, "binary")
    validate_hyperparameters(hyperparameters, allowed_hyperparameters(algorithm), f"{algorithm} on Spark")
    spark = start_session(check_master(options["spark_master"]), "tabular-pipeline-train")
    try:
        splits = load_splits(spark, options["data_path"], label, options["test_size"], seed, options["task"])
        task = splits.task
        check_spark_hyperparameters(hyperparameters, algorithm, task)
        mlflow.set_tags({TAG_TASK: task, "pipeline.algorithm": algorithm, "pipeline.engine": "spark"})
        train_sample = sample_rows(splits.train, SAMPLE_ROWS, seed, total=splits.train_rows)
        record_training_context(train_sample, label, splits.source)
        log_spark_datasets(splits, label)
        fixed, grid = split_search_space(hyperparameters)
        fit = fit_on_cluster(spark, splits.train, label, algorithm, task, fixed, grid, seed, options["cv"])
        log_screening(fit.dropped)
        mlflow.log_params(
            {"task_detected": task, "spark.workers": fit.workers, "spark.master": options["spark_master"]}
        )
        if fit.search is not None:
            log_search(fit.search)
        prepared_test = prepare(splits.test, label, fit.columns, fit.classes, None)
        classes = max(len(fit.classes), 1)
        _, performance = log_evaluation_on_cluster(
            fit.cluster_model, fit.exported, splits.test, prepared_test, label, task, classes, seed, splits.test_rows
        )
        log_prefixed_params("hp", {**allowed_hyperparameters(algorithm), **fit.settings})
        kept = fit.columns.numeric + fit.columns.categorical
        features = train_sample[kept]
        model_info = log_pipeline_model(
            fit.exported,
            features,
            algorithm,
            profile=training_profile(features, performance),
            optional_columns=set(kept),
        )
    except (PySparkException, Py4JError) as error:
        raise spark_failure(error, "train_basic") from None
    finally:
        stop_session(spark)
    mlflow.set_tag(TAG_OUTPUT_URI, model_info.model_uri)
    log_card(mlflow.MlflowClient(), mlflow.active_run().info.run_id)
    log.info("model logged at %s (exported from Spark; serves without Spark or Java)", model_info.model_uri)
