"""Logging a trained model's evaluation to the active run, identically for every training path."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pandas as pd

from tabular_pipeline.evaluation.artifacts import EVALUATION_ARTIFACT_PATH, TEST_SPLIT_FILE
from tabular_pipeline.evaluation.importance import IMPORTANCE_REPEATS, importance_rows, permutation_importance_table
from tabular_pipeline.evaluation.metrics import (
    PRIMARY_METRIC,
    metrics_from_served_output,
    scoring_for_task,
    unpack_served_output,
)
from tabular_pipeline.evaluation.plots import (
    PLOT_ROWS,
    save_classification_plots,
    save_importance_plot,
    save_regression_plots,
)
from tabular_pipeline.serving.model import probability_frame

log = logging.getLogger("evaluation")


def model_answer(model, features: pd.DataFrame, task: str):
    """A fitted pipeline's answer on `features` as its served form gives it: labels and
    `probability_<class>` columns from a classifier that has probabilities, else its predictions.
    (AutoGluon's served view decides labels its own way: not for it.)"""
    with_probabilities = task != "regression" and hasattr(model, "predict_proba")
    return probability_frame(model, features) if with_probabilities else model.predict(features)


def log_evaluation(model, test: pd.DataFrame, label_column: str, task: str, seed: int, answer=None) -> dict[str, float]:
    """Log test metrics, plots, permutation importance and the test split itself.

    The test split is kept with the run so that `register` can score the current champion on
    exactly the rows the candidate was judged on.

    Args:
        model: the fitted pipeline (raw columns in).
        test: the held-out rows, label included.
        label_column: the target column.
        task: "binary", "multiclass" or "regression".
        seed: the seed for permutation importance.
        answer: `model_answer(model, <test's features>, task)`, when the caller already has it.

    Returns:
        The metrics that were logged.
    """
    features, label = test.drop(columns=[label_column]), test[label_column]
    output = model_answer(model, features, task) if answer is None else answer
    try:
        importance = permutation_importance_table(model, features, label, scoring_for_task(task), seed)
    except ValueError as error:  # e.g. ROC AUC on a test split holding one class only
        log.warning("permutation importance skipped: %s", error)
        importance = None
    return log_evaluation_of_output(output, test, label_column, task, importance)


def log_evaluation_of_output(
    output, test: pd.DataFrame, label_column: str, task: str, importance: pd.DataFrame | None
) -> dict[str, float]:
    """Log metrics and plots computed from a model's answer on the test split (as a served model
    gives it), the permutation importance table, and the test split itself.

    This is what models that cannot be loaded in this process (auto-sklearn's, on Python 3.9) use.

    Args:
        output: labels or values, or a frame with `prediction` and `probability_<class>` columns.
        test: the held-out rows, label included.
        label_column: the target column.
        task: "binary", "multiclass" or "regression".
        importance: columns `feature`, `importance_mean`, `importance_std`, or None.

    Returns:
        The metrics that were logged.
    """
    import mlflow

    metrics = metrics_from_served_output(output, test[label_column], task)
    mlflow.log_metrics(metrics)
    log_evaluation_artifacts(output, test, label_column, task, importance)
    log.info("test metrics: %s", ", ".join(f"{name}={value:.4f}" for name, value in metrics.items()))
    return metrics


def log_evaluation_artifacts(
    output, test: pd.DataFrame, label_column: str, task: str, importance: pd.DataFrame | None
) -> None:
    """Log the plots, the permutation importance table and the test rows (`evaluation/`), and the
    primary metric's name; metrics are logged by the caller.

    Args:
        output: the model's answer on `test` (as `log_evaluation_of_output` takes it).
        test: the rows the gate scores a champion on, label included: the whole test split, or on
            the Spark engine a seeded sample of it.
        label_column: the target column.
        task: "binary", "multiclass" or "regression".
        importance: columns `feature`, `importance_mean`, `importance_std`, or None.
    """
    import mlflow

    label = test[label_column]
    # Metrics use the whole split; permutation importance and the residual plot use seeded samples.
    mlflow.log_params(
        {
            "evaluation.importance_rows": importance_rows(len(test), test.shape[1] - 1),
            "evaluation.importance_repeats": IMPORTANCE_REPEATS,
            "evaluation.plot_rows": min(len(test), PLOT_ROWS),
        }
    )
    predictions, probabilities, classes = unpack_served_output(output, label, task)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        test.to_parquet(folder / TEST_SPLIT_FILE, index=False)
        if task == "regression":
            save_regression_plots(label, predictions, folder)
        else:
            binary = probabilities is not None and len(classes) == 2
            save_classification_plots(
                label, predictions, probabilities[:, 1] if binary else None, classes[1] if binary else None, folder
            )
        if importance is not None:
            importance.to_csv(folder / "feature_importance.csv", index=False)
            save_importance_plot(importance, folder / "feature_importance.png")
        mlflow.log_artifacts(str(folder), EVALUATION_ARTIFACT_PATH)
    mlflow.set_tag("pipeline.primary_metric", PRIMARY_METRIC[task])
