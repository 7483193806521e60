"""Each AutoML tool's search as `train_automl` runs it inside its MLflow run: the search, the
summary every tool records in the same places (trial table, best learner, configuration), the
evaluation shared with train_basic, and the logged model. Each function returns the model's URI."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import pandas as pd

from tabular_pipeline.evaluation.importance import IMPORTANCE_REPEATS, importance_rows
from tabular_pipeline.evaluation.metrics import scoring_for_task
from tabular_pipeline.evaluation.report import log_evaluation, log_evaluation_of_output, model_answer
from tabular_pipeline.monitoring.calibration import model_performance_profile, performance_profile
from tabular_pipeline.monitoring.profile import training_profile
from tabular_pipeline.training.automl.autosklearn_search import (
    AUTOSKLEARN_METRIC,
    config_params,
    read_worker_result,
    run_worker,
    served_output,
    write_worker_request,
)
from tabular_pipeline.training.automl.flaml_search import (
    LIBRARY_OF_LEARNER,
    assemble_pipeline,
    run_search,
    trial_history,
)
from tabular_pipeline.training.model_logging import log_autogluon_model, log_pipeline_model, log_saved_model
from tabular_pipeline.training.pipelines import build_preprocessor, split_feature_columns
from tabular_pipeline.training.run_records import log_prefixed_params

log = logging.getLogger("train_automl")


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
    log.info("best of %d candidates: %s %s", len(history), best_estimator, json.dumps(best_config, default=str))


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
    answer = model_answer(model, splits.test.drop(columns=[label]), task)
    metrics = log_evaluation(model, splits.test, label, task, seed, answer)
    log_prefixed_params("hp", automl.model.estimator.get_params())
    library = LIBRARY_OF_LEARNER.get(automl.best_estimator, "")
    performance = model_performance_profile(model, splits.test, label, task, metrics, seed, answer)
    return log_pipeline_model(model, train_x, library, profile=training_profile(train_x[kept], performance)).model_uri


def search_with_autogluon(splits, label: str, kept: list[str], task: str, settings: dict, seed: int) -> str:
    """AutoGluon in this process, on the raw kept columns (it preprocesses them itself); returns the
    logged model's URI."""
    import mlflow

    from tabular_pipeline.serving.autogluon import as_estimator, quiet_gpu_check
    from tabular_pipeline.training.automl.autogluon_search import run_search

    log.info("AutoGluon fit: %s", describe_autogluon_fit(settings, task, len(splits.train)))
    quiet_gpu_check()
    with tempfile.TemporaryDirectory() as scratch:
        predictor, outcome = run_search(splits.train[[*kept, label]], label, task, settings, Path(scratch))
        board = outcome.leaderboard
        weights = {name: round(weight, 4) for name, weight in outcome.ensemble.items()}
        log_search_summary(board, outcome.best_model, weights, {}, "leaderboard.csv")
        mlflow.log_params(
            {
                "automl.ensemble": ",".join(f"{name}:{weight:.3f}" for name, weight in outcome.ensemble.items()),
                "automl.bag_folds_used": outcome.bag_folds_used,
                "automl.stack_levels_used": outcome.stack_levels_used,
            }
        )
        log_model_failures(outcome.failures)
        for line in outcome.warnings:
            log.warning(line)
        if outcome.warnings:
            mlflow.set_tag("automl.warnings", " | ".join(outcome.warnings))
        mlflow.log_metrics(
            {
                "automl_trials": float(len(board)),
                "automl_ensemble_size": float(len(outcome.ensemble)),
                "automl_best_validation_score": outcome.best_validation_score,
            }
        )
        estimator = as_estimator(predictor)
        metrics = log_evaluation(estimator, splits.test, label, task, seed)
        train_x = splits.train.drop(columns=[label])
        performance = model_performance_profile(estimator, splits.test, label, task, metrics, seed)
        profile = training_profile(train_x[kept], performance)
        return log_autogluon_model(estimator, outcome.predictor_dir, outcome.libraries, train_x, profile).model_uri


def describe_autogluon_fit(settings: dict, task: str, training_rows: int) -> str:
    """One line on what AutoGluon will do: the portfolio, bagged or on a holdout (and why), the
    search's seconds and whether a refit follows."""
    how = f"presets {settings['presets']}" + "".join(
        f", {name}={settings[name]}" for name in ("num_bag_folds", "num_stack_levels") if name in settings
    )
    if "hyperparameters" in settings:
        folds, levels = settings["num_bag_folds"], settings["num_stack_levels"]
        how = f"the {settings['hyperparameters']} portfolio" + (
            f" bagged in {folds} folds" if folds else " on a holdout"
        )
        how += f", {levels} stack level{'s' if levels > 1 else ''}" if levels else ""
        if not folds and "bag_min_budget" in settings:
            how += f" (bagging {training_rows:,} training rows needs at least {settings['bag_min_budget']:g} s)"
        how += f" for {settings['search_time_limit']:g} s"
        how += ", then a refit of the best on all rows" if settings["refit_full"] else ""
    return f"{task} for {settings['time_limit']:g} s, {how} (metric {settings['eval_metric']})"


def log_model_failures(failures: pd.DataFrame) -> None:
    """AutoGluon skips a model that fails and goes on: the table goes to `automl/model_failures.csv`,
    and one line names the models that failed (a warning) or ran out of time (information)."""
    import mlflow

    if not len(failures):
        return
    with tempfile.TemporaryDirectory() as scratch:
        failures.to_csv(Path(scratch) / "model_failures.csv", index=False)
        mlflow.log_artifact(str(Path(scratch) / "model_failures.csv"), "automl")
    timed_out = failures["exc_type"] == "TimeLimitExceeded"
    if timed_out.any():
        log.info("AutoGluon stopped %d model(s) at the time limit: %s", timed_out.sum(),
                 ", ".join(failures.loc[timed_out, "model"]))  # fmt: skip
    if (~timed_out).any():
        log.warning("AutoGluon skipped %d model(s) that failed to train: %s (see automl/model_failures.csv)",
                    (~timed_out).sum(), ", ".join(failures.loc[~timed_out, "model"]))  # fmt: skip


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
        "importance_rows": importance_rows(len(splits.test), splits.test.shape[1] - 1),
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
        output = served_output(result.test_output, task)
        metrics = log_evaluation_of_output(output, splits.test, label, task, result.importance)
        train_x = splits.train.drop(columns=[label])
        performance = performance_profile(output, splits.test[label], task, label, metrics)
        return log_saved_model(result.model_dir, profile=training_profile(train_x[kept], performance))
