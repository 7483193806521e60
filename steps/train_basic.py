"""Entry point `train_basic`: fit one algorithm (with an optional search), evaluate, log the model."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import click

from tabular_pipeline.data.screening import screen_columns
from tabular_pipeline.data.sources import fetch_table
from tabular_pipeline.data.splits import Splits, prepare_splits
from tabular_pipeline.engines import check_engine
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.evaluation.card import CARD_FILE, log_card
from tabular_pipeline.evaluation.report import log_evaluation, model_answer
from tabular_pipeline.monitoring.calibration import model_performance_profile
from tabular_pipeline.monitoring.profile import training_profile
from tabular_pipeline.orchestration.step_runs import TAG_OUTPUT_URI, TAG_TASK, run_step
from tabular_pipeline.parameters.entry_points import entry_point_options
from tabular_pipeline.parameters.hyperparameters import split_search_space
from tabular_pipeline.parameters.strings import parse_param_string
from tabular_pipeline.registry.lineage import record_training_inputs
from tabular_pipeline.training.algorithms import booster_threads, check_hyperparameters, normalise_algorithm
from tabular_pipeline.training.model_logging import log_pipeline_model
from tabular_pipeline.training.pipelines import (
    build_pipeline,
    data_dependent_defaults,
    effective_hyperparameters,
    fit_params_for,
    split_feature_columns,
)
from tabular_pipeline.training.run_records import log_prefixed_params, log_screening
from tabular_pipeline.training.search import MAX_GRID_CANDIDATES, build_search, count_candidates, search_results_table

log = logging.getLogger("train_basic")


def fit_model(pipeline, grid: dict, train_x, train_y, task: str, algorithm: str, fit_params: dict, options: dict):
    """Fit the pipeline, or search `grid` with cross-validation and log the results table."""
    import mlflow

    if not grid:
        log.info("fitting on %d rows", len(train_x))
        return pipeline.fit(train_x, train_y, **fit_params)
    search = build_search(pipeline, grid, task, algorithm, options["cv"], options["seed"], n_jobs=options["n_jobs"])
    candidates = min(count_candidates(grid), MAX_GRID_CANDIDATES)
    log.info(
        "searching %d candidates with %d-fold cross-validation (%s, n_jobs=%d)",
        candidates,
        options["cv"],
        search.scoring,
        options["n_jobs"],
    )
    search.fit(train_x, train_y, **fit_params)
    with tempfile.TemporaryDirectory() as scratch:
        results = Path(scratch) / "cv_results.csv"
        search_results_table(search).to_csv(results, index=False)
        mlflow.log_artifact(str(results), "search")
    mlflow.log_metric("cv_best_score", float(search.best_score_))
    best = {name.rsplit("__", 1)[-1]: value for name, value in search.best_params_.items()}
    log_prefixed_params("best", best)
    log.info("best parameters %s (cv score %.4f)", best, search.best_score_)
    return search.best_estimator_


def check_not_split_on_spark(data_path: str) -> None:
    """Refuse, in one line, the splits of a Spark `process` run on the pandas engine."""
    from tabular_pipeline.spark.processing import load_split_record

    if data_path.startswith("runs:/") and load_split_record(data_path) is not None:
        raise PipelineError(
            f"{data_path} was split by process -P engine=spark; expected -P engine=spark here too, or a run of "
            "process on the pandas engine"
        )


def train_model(options: dict, run) -> None:  # noqa: ARG001 - same signature as the other steps
    """Fit, evaluate and log the model described by the step's options."""
    algorithm = normalise_algorithm(options["algorithm"])
    hyperparameters = {
        **parse_param_string(options["params"], "params"),
        **parse_param_string(options["search_params"], "search_params"),
    }
    if check_engine(options["engine"]) == "spark":
        from tabular_pipeline.spark.training import train_with_spark

        train_with_spark(options, algorithm, hyperparameters)
        return
    check_not_split_on_spark(options["data_path"])
    with tempfile.TemporaryDirectory() as scratch:
        location = fetch_table(options["data_path"], Path(scratch))
        splits, task = prepare_splits(
            location, options["label_column"], options["test_size"], options["seed"], options["task"]
        )
    train_on_splits(splits, task, algorithm, hyperparameters, options)


def train_on_splits(splits: Splits, task: str, algorithm: str, hyperparameters: dict, options: dict):
    """Fit, evaluate and log the model on prepared splits, in the active run; returns its `ModelInfo`.

    The pipeline-overhead benchmark's same-work script calls this too, so that it does this step's
    work and nothing else.
    """
    import mlflow

    label = options["label_column"]
    check_hyperparameters(hyperparameters, algorithm, task)
    mlflow.set_tags({TAG_TASK: task, "pipeline.algorithm": algorithm})
    mlflow.log_params({"task_detected": task, "n_jobs_used": options["n_jobs"]})
    fixed, grid = split_search_space(hyperparameters)
    train_x, train_y = splits.train.drop(columns=[label]), splits.train[label]
    kept, dropped = screen_columns(train_x)
    log_screening(dropped)
    columns = split_feature_columns(train_x[kept])
    defaults = data_dependent_defaults(algorithm, task, train_y, columns)
    # A search runs n_jobs fits at once; each booster gets its share of the cores.
    threads = booster_threads(options["n_jobs"] if grid else 1)
    mlflow.log_param("booster_threads", threads)
    pipeline = build_pipeline(algorithm, task, fixed, columns, options["seed"], defaults, threads)
    record_training_inputs(splits.train, splits.test, label, options["data_path"])
    model = fit_model(pipeline, grid, train_x, train_y, task, algorithm, fit_params_for(algorithm, columns), options)
    # One answer on the test split serves the metrics and the calibration.
    answer = model_answer(model, splits.test.drop(columns=[label]), task)
    metrics = log_evaluation(model, splits.test, label, task, options["seed"], answer)
    log_prefixed_params("hp", effective_hyperparameters(model, task, algorithm))
    performance = model_performance_profile(model, splits.test, label, task, metrics, options["seed"], answer)
    model_info = log_pipeline_model(model, train_x, algorithm, profile=training_profile(train_x[kept], performance))
    mlflow.set_tag(TAG_OUTPUT_URI, model_info.model_uri)
    log_card(mlflow.MlflowClient(), mlflow.active_run().info.run_id)
    log.info("model logged at %s; its card is the run's %s", model_info.model_uri, CARD_FILE)
    return model_info


# Help lines for `--help`; names, types and defaults come from MLproject.
HELP = {
    "data_path": "A processed run URI, or a raw .csv file or folder.",
    "algorithm": "lr, svm, lightgbm or xgboost (any case).",
    "params": "Fixed hyperparameters: name=value;name=value.",
    "search_params": "Search space: name=[v1, v2];name=[v3, v4].",
    "label_column": "The target column.",
    "model_name": "Recorded only; registration happens in the register step.",
    "task": "auto, binary, multiclass or regression.",
    "seed": "Seed.",
    "cv": "Folds for the search.",
    "test_size": "Test fraction when data_path is a single raw file.",
    "n_jobs": "Parallel fits during a search.",
    "engine": "pandas (one process) or spark (a cluster, or a local session).",
    "spark_master": "With engine=spark: local[*], spark://host:port, yarn or k8s://...",
}


@click.command()
@entry_point_options("train_basic", HELP)
def train_basic(**options) -> None:
    """Train LogisticRegression, SVM, LightGBM or XGBoost on a table and log the model."""
    run_step("train_basic", lambda run: train_model(options, run))


if __name__ == "__main__":
    train_basic()
