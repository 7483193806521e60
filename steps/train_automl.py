"""Entry point `train_automl`: an AutoML search (FLAML or AutoGluon here, auto-sklearn in its own
Python 3.9 environment), evaluated and logged like train_basic."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import click

from tabular_pipeline.data.screening import screen_columns
from tabular_pipeline.data.sources import fetch_table
from tabular_pipeline.data.splits import prepare_splits
from tabular_pipeline.evaluation.card import CARD_FILE, log_card
from tabular_pipeline.evaluation.metrics import scoring_for_task
from tabular_pipeline.evaluation.plots import IMPORTANCE_REPEATS, IMPORTANCE_ROWS
from tabular_pipeline.evaluation.report import log_evaluation, log_evaluation_of_output
from tabular_pipeline.monitoring.profile import training_profile
from tabular_pipeline.orchestration.step_runs import TAG_OUTPUT_URI, TAG_TASK, run_step
from tabular_pipeline.parameters.entry_points import entry_point_options
from tabular_pipeline.parameters.strings import parse_param_string
from tabular_pipeline.registry.lineage import record_training_inputs
from tabular_pipeline.training.automl import check_tool
from tabular_pipeline.training.automl.autogluon_search import autogluon_settings
from tabular_pipeline.training.automl.autosklearn_search import (
    AUTOSKLEARN_METRIC,
    autosklearn_settings,
    config_params,
    read_worker_result,
    run_worker,
    served_output,
    write_worker_request,
)
from tabular_pipeline.training.automl.flaml_search import (
    LIBRARY_OF_LEARNER,
    assemble_pipeline,
    flaml_settings,
    run_search,
    trial_history,
)
from tabular_pipeline.training.model_logging import log_autogluon_model, log_pipeline_model, log_saved_model
from tabular_pipeline.training.pipelines import build_preprocessor, split_feature_columns
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
        settings = autogluon_settings(params, options["time_budget"], task)
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


def log_search_summary(
    history, best_estimator: str, best_config: dict, details: dict, table_file: str = "trials.csv"
) -> None:
    """The trial table (AutoGluon's is its leaderboard), the best learner and its configuration, in
    the same places for every tool."""
    import mlflow

    with tempfile.TemporaryDirectory() as scratch:
        history.to_csv(Path(scratch) / table_file, index=False)
        mlflow.log_artifact(str(Path(scratch) / table_file), "automl")
    mlflow.log_param("automl.best_estimator", best_estimator)
    log_prefixed_params("best", best_config)
    mlflow.log_dict({"best_estimator": best_estimator, "best_config": best_config, **details}, "automl/best.json")
    log.info("best of %d trials: %s %s", len(history), best_estimator, json.dumps(best_config, default=str))


def search_with_flaml(splits, label: str, kept: list[str], task: str, settings: dict, seed: int) -> str:
    """FLAML in this process, on this project's preprocessing; returns the logged model's URI."""
    import mlflow
    from sklearn.preprocessing import LabelEncoder

    train_x, train_y = splits.train.drop(columns=[label]), splits.train[label]
    preprocessor = build_preprocessor("lightgbm", split_feature_columns(train_x[kept])).fit(train_x)
    encoder = LabelEncoder().fit(train_y) if task != "regression" else None
    target = encoder.transform(train_y) if encoder is not None else train_y.to_numpy()
    log.info(
        "FLAML search: %s for %g s over %s (metric %s)",
        task,
        settings["time_budget"],
        ", ".join(settings["estimator_list"]),
        settings["metric"],
    )
    with tempfile.TemporaryDirectory() as scratch:
        log_file = Path(scratch) / "flaml.log"
        automl = run_search(preprocessor.transform(train_x), target, settings, log_file)
        history = trial_history(log_file)
    best_config = {
        name: (float(value) if hasattr(value, "dtype") else value) for name, value in automl.best_config.items()
    }
    log_search_summary(history, automl.best_estimator, best_config, {})
    mlflow.log_metrics({"automl_trials": float(len(history)), "automl_best_validation_loss": float(automl.best_loss)})
    model = assemble_pipeline(preprocessor, automl.model.estimator, encoder, task)
    log_evaluation(model, splits.test, label, task, seed)
    log_prefixed_params("hp", automl.model.estimator.get_params())
    library = LIBRARY_OF_LEARNER.get(automl.best_estimator, "")
    return log_pipeline_model(model, train_x, library, profile=training_profile(train_x[kept])).model_uri


def search_with_autogluon(splits, label: str, kept: list[str], task: str, settings: dict, seed: int) -> str:
    """AutoGluon in this process, on the raw kept columns (it preprocesses them itself); returns the
    logged model's URI."""
    import mlflow

    from tabular_pipeline.serving.autogluon import as_estimator, quiet_gpu_check
    from tabular_pipeline.training.automl.autogluon_search import run_search

    log.info(
        "AutoGluon fit: %s for %g s, presets %s (metric %s)",
        task, settings["time_limit"], settings["presets"], settings["eval_metric"],
    )  # fmt: skip
    quiet_gpu_check()
    with tempfile.TemporaryDirectory() as scratch:
        predictor, outcome = run_search(splits.train[[*kept, label]], label, task, settings, Path(scratch))
        board = outcome.leaderboard
        log_search_summary(
            board, outcome.best_model, outcome.ensemble, {"ensemble": outcome.ensemble}, "leaderboard.csv"
        )
        mlflow.log_param(
            "automl.ensemble", ",".join(f"{name}:{weight:.3f}" for name, weight in outcome.ensemble.items())
        )
        failures = outcome.failures
        if len(failures):
            with tempfile.TemporaryDirectory() as failures_dir:
                failures.to_csv(Path(failures_dir) / "model_failures.csv", index=False)
                mlflow.log_artifact(str(Path(failures_dir) / "model_failures.csv"), "automl")
            log.warning(
                "AutoGluon skipped %d model(s) that failed to train: %s (see automl/model_failures.csv)",
                len(failures), ", ".join(map(str, failures.get("model", failures.index))),
            )  # fmt: skip
        mlflow.log_metrics(
            {
                "automl_trials": float(len(board)),
                "automl_ensemble_size": float(len(outcome.ensemble)),
                "automl_best_validation_score": outcome.best_validation_score,
            }
        )
        estimator = as_estimator(predictor)
        log_evaluation(estimator, splits.test, label, task, seed)
        train_x = splits.train.drop(columns=[label])
        profile = training_profile(train_x[kept])
        return log_autogluon_model(estimator, outcome.predictor_dir, outcome.libraries, train_x, profile).model_uri


def search_with_autosklearn(
    splits, label: str, kept: list[str], task: str, settings: dict, seed: int, experiment_id: str
) -> str:
    """auto-sklearn in its Python 3.9 worker; this step logs what the worker wrote and returns the
    logged model's URI."""
    import mlflow

    request = {
        "label_column": label,
        "task": task,
        "seed": seed,
        "settings": settings,
        "metric": AUTOSKLEARN_METRIC[task],
        "scoring": scoring_for_task(task),
        "importance_rows": IMPORTANCE_ROWS,
        "importance_repeats": IMPORTANCE_REPEATS,
    }
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        write_worker_request(workdir, splits.train, splits.test, kept, request)
        log.info(
            "auto-sklearn search: %s for %d s (per run %d s) in its Python 3.9 environment (built on first use, "
            "about a minute)",
            task, settings["time_left_for_this_task"], settings["per_run_time_limit"],
        )  # fmt: skip
        worker_run_id = run_worker(workdir, experiment_id)
        mlflow.set_tag("pipeline.worker_run_id", worker_run_id)
        result = read_worker_result(workdir)
        best_config = config_params(result.best.get("best_config", {}))
        log_search_summary(
            result.trials,
            result.best.get("best_estimator", ""),
            best_config,
            {"ensemble": result.best.get("ensemble", [])},
        )
        succeeded = result.trials[result.trials["status"] == "Success"]
        summary = {
            "automl_trials": float(len(result.trials)),
            "automl_ensemble_size": float(len(result.best.get("ensemble", []))),
        }
        if len(succeeded):
            summary["automl_best_validation_score"] = float(succeeded["validation_score"].max())
        mlflow.log_metrics(summary)
        log_evaluation_of_output(served_output(result.test_output, task), splits.test, label, task, result.importance)
        train_x = splits.train.drop(columns=[label])
        return log_saved_model(result.model_dir, profile=training_profile(train_x[kept]))


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
