"""Entry point `train_automl`: an AutoML search (FLAML), evaluated and logged like train_basic."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import click

from tabular_pipeline.automl import check_tool
from tabular_pipeline.automl_flaml import LIBRARY_OF_LEARNER, assemble_pipeline, flaml_settings, run_search, trial_history
from tabular_pipeline.cli_options import WHOLE_NUMBER
from tabular_pipeline.evaluation_report import log_evaluation
from tabular_pipeline.feature_screening import screen_columns
from tabular_pipeline.model_logging import log_pipeline_model
from tabular_pipeline.modeling import build_preprocessor, split_feature_columns
from tabular_pipeline.params import parse_param_string
from tabular_pipeline.sources import fetch_table
from tabular_pipeline.step_runs import TAG_OUTPUT_URI, TAG_TASK, run_step
from tabular_pipeline.tables import prepare_splits
from tabular_pipeline.training_log import log_prefixed_params, log_screening

log = logging.getLogger("train_automl")


def train_with_automl(options: dict) -> None:
    """Search with FLAML, then evaluate and log the best model like train_basic does."""
    import mlflow
    from sklearn.preprocessing import LabelEncoder

    tool = check_tool(options["tool"])
    params = parse_param_string(options["params"], "params")
    label = options["label_column"]
    with tempfile.TemporaryDirectory() as scratch:
        location = fetch_table(options["data_path"], Path(scratch))
        splits, task = prepare_splits(location, label, options["test_size"], options["seed"], options["task"])
    settings = flaml_settings(params, options["time_budget"], task, options["seed"])
    train_x, train_y = splits.train.drop(columns=[label]), splits.train[label]
    kept, dropped = screen_columns(train_x)
    mlflow.log_params({"automl.tool": tool, "task_detected": task})
    log_screening(dropped)
    log_prefixed_params("automl", settings)
    mlflow.set_tags({TAG_TASK: task, "pipeline.algorithm": f"automl:{tool}"})
    preprocessor = build_preprocessor("lightgbm", split_feature_columns(train_x[kept])).fit(train_x)
    encoder = LabelEncoder().fit(train_y) if task != "regression" else None
    target = encoder.transform(train_y) if encoder is not None else train_y.to_numpy()
    log.info("FLAML search: %s for %g s over %s (metric %s)", task, settings["time_budget"], ", ".join(settings["estimator_list"]), settings["metric"])
    with tempfile.TemporaryDirectory() as scratch:
        log_file = Path(scratch) / "flaml.log"
        automl = run_search(preprocessor.transform(train_x), target, settings, log_file)
        history = trial_history(log_file)
        history.to_csv(Path(scratch) / "trials.csv", index=False)
        mlflow.log_artifact(str(Path(scratch) / "trials.csv"), "automl")
    best_config = {name: (float(value) if hasattr(value, "dtype") else value) for name, value in automl.best_config.items()}
    mlflow.log_param("automl.best_estimator", automl.best_estimator)
    log_prefixed_params("best", best_config)
    mlflow.log_dict({"best_estimator": automl.best_estimator, "best_config": best_config}, "automl/best.json")
    mlflow.log_metrics({"automl_trials": float(len(history)), "automl_best_validation_loss": float(automl.best_loss)})
    log.info("best of %d trials: %s %s", len(history), automl.best_estimator, json.dumps(best_config, default=str))
    model = assemble_pipeline(preprocessor, automl.model.estimator, encoder, task)
    log_evaluation(model, splits.test, label, task, options["seed"])
    log_prefixed_params("hp", automl.model.estimator.get_params())
    model_info = log_pipeline_model(model, train_x, LIBRARY_OF_LEARNER.get(automl.best_estimator, ""))
    mlflow.set_tag(TAG_OUTPUT_URI, model_info.model_uri)
    log.info("model logged at %s", model_info.model_uri)


@click.command()
@click.option("--tool", default="flaml", show_default=True, help="flaml or autosklearn (any case).")
@click.option("--data_path", required=True, help="A processed run URI, or a raw .csv file or folder.")
@click.option("--params", default="", help="Tool settings: name=value;name=value.")
@click.option("--label_column", default="label", show_default=True)
@click.option("--model_name", default="", help="Recorded only; registration happens in the register step.")
@click.option("--time_budget", type=float, default=60.0, show_default=True, help="Seconds of search (params may override).")
@click.option("--task", default="auto", show_default=True, help="auto, binary, multiclass or regression.")
@click.option("--seed", type=WHOLE_NUMBER, default=1, show_default=True)
@click.option("--test_size", type=float, default=0.25, show_default=True, help="Test fraction when data_path is a single raw file.")
def train_automl(**options) -> None:
    """Train with an AutoML tool and log the best model."""
    run_step("train_automl", lambda run: train_with_automl(options))


if __name__ == "__main__":
    train_automl()
