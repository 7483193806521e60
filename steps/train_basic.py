"""Entry point `train_basic`: fit one algorithm (with an optional search), evaluate, log the model."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import click

from tabular_pipeline.cli_options import WHOLE_NUMBER
from tabular_pipeline.evaluation import PRIMARY_METRIC, evaluate_model
from tabular_pipeline.model_logging import log_pipeline_model
from tabular_pipeline.modeling import (
    MAX_GRID_CANDIDATES,
    build_pipeline,
    build_search,
    check_hyperparameters,
    count_candidates,
    effective_hyperparameters,
    normalise_algorithm,
    search_results_table,
    split_feature_columns,
)
from tabular_pipeline.params import parse_param_string, split_search_space
from tabular_pipeline.sources import fetch_table
from tabular_pipeline.step_runs import TAG_OUTPUT_URI, TAG_TASK, run_step
from tabular_pipeline.tables import prepare_splits

log = logging.getLogger("train_basic")
MAX_PARAM_VALUE_LENGTH = 500


def train_model(options: dict, run) -> None:
    """Fit, evaluate and log the model described by the step's options."""
    import mlflow

    algorithm = normalise_algorithm(options["algorithm"])
    hyperparameters = {**parse_param_string(options["params"], "params"), **parse_param_string(options["search_params"], "search_params")}
    with tempfile.TemporaryDirectory() as scratch:
        location = fetch_table(options["data_path"], Path(scratch))
        splits, task = prepare_splits(location, options["label_column"], options["test_size"], options["seed"], options["task"])
    check_hyperparameters(hyperparameters, algorithm, task)
    fixed, grid = split_search_space(hyperparameters)
    label = options["label_column"]
    train_x, train_y = splits.train.drop(columns=[label]), splits.train[label]
    test_x, test_y = splits.test.drop(columns=[label]), splits.test[label]
    pipeline = build_pipeline(algorithm, task, fixed, split_feature_columns(train_x), options["seed"])
    mlflow.log_input(mlflow.data.from_pandas(splits.train, name="train", targets=label), context="training")
    mlflow.log_input(mlflow.data.from_pandas(splits.test, name="test", targets=label), context="testing")
    if grid:
        search = build_search(pipeline, grid, task, options["cv"], options["seed"])
        candidates = min(count_candidates(grid), MAX_GRID_CANDIDATES)
        log.info("searching %d candidates with %d-fold cross-validation (%s)", candidates, options["cv"], search.scoring)
        search.fit(train_x, train_y)
        model = search.best_estimator_
        with tempfile.TemporaryDirectory() as scratch:
            results = Path(scratch) / "cv_results.csv"
            search_results_table(search).to_csv(results, index=False)
            mlflow.log_artifact(str(results), "search")
        mlflow.log_metric("cv_best_score", float(search.best_score_))
        best = {name.rsplit("__", 1)[-1]: value for name, value in search.best_params_.items()}
        mlflow.log_params({f"best.{name}": str(value)[:MAX_PARAM_VALUE_LENGTH] for name, value in best.items()})
        log.info("best parameters %s (cv score %.4f)", best, search.best_score_)
    else:
        log.info("fitting %s on %d rows", algorithm, len(train_x))
        model = pipeline.fit(train_x, train_y)
    metrics = evaluate_model(model, test_x, test_y, task)
    mlflow.log_metrics(metrics)
    mlflow.log_params({f"hp.{name}": str(value)[:MAX_PARAM_VALUE_LENGTH] for name, value in effective_hyperparameters(model, task).items()})
    model_info = log_pipeline_model(model, train_x)
    mlflow.set_tags({TAG_OUTPUT_URI: model_info.model_uri, TAG_TASK: task, "pipeline.primary_metric": PRIMARY_METRIC[task], "pipeline.algorithm": algorithm})
    shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    log.info("test metrics: %s", shown)
    log.info("model logged at %s", model_info.model_uri)


@click.command()
@click.option("--data_path", required=True, help="A processed run URI, or a raw .csv file or folder.")
@click.option("--algorithm", default="lightgbm", show_default=True, help="lr, svm, lightgbm or xgboost (any case).")
@click.option("--params", default="", help="Fixed hyperparameters: name=value;name=value.")
@click.option("--search_params", default="", help="Search space: name=[v1, v2];name=[v3, v4].")
@click.option("--label_column", default="label", show_default=True)
@click.option("--model_name", default="", help="Recorded only; registration happens in the register step.")
@click.option("--task", default="auto", show_default=True, help="auto, binary, multiclass or regression.")
@click.option("--seed", type=WHOLE_NUMBER, default=1, show_default=True)
@click.option("--cv", type=WHOLE_NUMBER, default=3, show_default=True, help="Folds for the search.")
@click.option("--test_size", type=float, default=0.25, show_default=True, help="Test fraction when data_path is a single raw file.")
def train_basic(**options) -> None:
    """Train LogisticRegression, SVM, LightGBM or XGBoost on a table and log the model."""
    run_step("train_basic", lambda run: train_model(options, run))


if __name__ == "__main__":
    train_basic()
