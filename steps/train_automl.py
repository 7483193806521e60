"""Entry point `train_automl`: an AutoML search (FLAML or AutoGluon here, auto-sklearn in its own
Python 3.9 environment), evaluated and logged like train_basic."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import click

from tabular_pipeline.data.screening import screen_columns
from tabular_pipeline.data.sources import fetch_table
from tabular_pipeline.data.splits import prepare_splits
from tabular_pipeline.evaluation.card import CARD_FILE, log_card
from tabular_pipeline.orchestration.step_runs import TAG_OUTPUT_URI, TAG_TASK, run_step
from tabular_pipeline.parameters.entry_points import entry_point_options
from tabular_pipeline.parameters.strings import parse_param_string
from tabular_pipeline.registry.lineage import record_training_inputs
from tabular_pipeline.training.automl import check_tool
from tabular_pipeline.training.automl.autogluon_settings import autogluon_settings
from tabular_pipeline.training.automl.autosklearn_search import autosklearn_settings
from tabular_pipeline.training.automl.flaml_search import flaml_settings
from tabular_pipeline.training.automl.search_runs import (
    search_with_autogluon,
    search_with_autosklearn,
    search_with_flaml,
)
from tabular_pipeline.training.run_records import log_prefixed_params, log_screening

log = logging.getLogger("train_automl")


def train_with_automl(options: dict, run) -> None:
    """Search with the chosen tool, then evaluate and log the best model like train_basic does."""
    import mlflow

    tool = check_tool(options["tool"])
    params = parse_param_string(options["params"], "params")
    label = options["label_column"]
    with tempfile.TemporaryDirectory() as scratch:
        location = fetch_table(options["data_path"], Path(scratch))
        splits, task = prepare_splits(location, label, options["test_size"], options["seed"], options["task"])
    if tool == "flaml":
        settings = flaml_settings(params, options["time_budget"], task, options["seed"])
    elif tool == "autogluon":
        settings = autogluon_settings(params, options["time_budget"], task, training_rows=len(splits.train))
    else:
        settings = autosklearn_settings(params, options["time_budget"], task, options["seed"])
    train_x = splits.train.drop(columns=[label])
    kept, dropped = screen_columns(train_x)
    record_training_inputs(splits.train, splits.test, label, options["data_path"])
    mlflow.log_params({"automl.tool": tool, "task_detected": task})
    log_screening(dropped)
    log_prefixed_params("automl", settings)
    mlflow.set_tags({TAG_TASK: task, "pipeline.algorithm": f"automl:{tool}"})
    if tool == "flaml":
        model_uri = search_with_flaml(splits, label, kept, task, settings, options["seed"])
    elif tool == "autogluon":
        model_uri = search_with_autogluon(splits, label, kept, task, settings, options["seed"])
    else:
        model_uri = search_with_autosklearn(
            splits, label, kept, task, settings, options["seed"], run.info.experiment_id
        )
    mlflow.set_tag(TAG_OUTPUT_URI, model_uri)
    log_card(mlflow.MlflowClient(), run.info.run_id)
    log.info("model logged at %s; its card is the run's %s", model_uri, CARD_FILE)


# Help lines for `--help`; names, types and defaults come from MLproject.
HELP = {
    "tool": "flaml, autogluon or autosklearn (any case).",
    "data_path": "A processed run URI, or a raw .csv file or folder.",
    "params": "Tool settings: name=value;name=value.",
    "label_column": "The target column.",
    "model_name": "Recorded only; registration happens in the register step.",
    "time_budget": "Seconds of search (params may override).",
    "task": "auto, binary, multiclass or regression.",
    "seed": "Seed.",
    "test_size": "Test fraction when data_path is a single raw file.",
}


@click.command()
@entry_point_options("train_automl", HELP)
def train_automl(**options) -> None:
    """Train with an AutoML tool and log the best model."""
    run_step("train_automl", lambda run: train_with_automl(options, run))


if __name__ == "__main__":
    train_automl()
