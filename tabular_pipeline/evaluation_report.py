"""Logging a trained model's evaluation to the active run, identically for every training path."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pandas as pd

from tabular_pipeline.evaluation import PRIMARY_METRIC, evaluate_model
from tabular_pipeline.evaluation_plots import permutation_importance_table, save_classification_plots, save_importance_plot, save_regression_plots
from tabular_pipeline.modeling import scoring_for_task

EVALUATION_ARTIFACT_PATH = "evaluation"
TEST_SPLIT_FILE = "test.parquet"
log = logging.getLogger("evaluation")


def log_evaluation(model, test: pd.DataFrame, label_column: str, task: str, seed: int) -> dict[str, float]:
    """Log test metrics, plots, permutation importance and the test split itself.

    The test split is kept with the run so that `register` can score the current champion on
    exactly the rows the candidate was judged on.

    Args:
        model: the fitted pipeline (raw columns in).
        test: the held-out rows, label included.
        label_column: the target column.
        task: "binary", "multiclass" or "regression".
        seed: the seed for permutation importance.

    Returns:
        The metrics that were logged.
    """
    import mlflow

    features, label = test.drop(columns=[label_column]), test[label_column]
    metrics = evaluate_model(model, features, label, task)
    mlflow.log_metrics(metrics)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        test.to_parquet(folder / TEST_SPLIT_FILE, index=False)
        if task == "regression":
            save_regression_plots(model, features, label, folder)
        else:
            save_classification_plots(model, features, label, folder)
        try:
            importance = permutation_importance_table(model, features, label, scoring_for_task(task), seed)
            importance.to_csv(folder / "feature_importance.csv", index=False)
            save_importance_plot(importance, folder / "feature_importance.png")
        except ValueError as error:  # e.g. ROC AUC on a test split holding one class only
            log.warning("permutation importance skipped: %s", error)
        mlflow.log_artifacts(str(folder), EVALUATION_ARTIFACT_PATH)
    mlflow.set_tag("pipeline.primary_metric", PRIMARY_METRIC[task])
    log.info("test metrics: %s", ", ".join(f"{name}={value:.4f}" for name, value in metrics.items()))
    return metrics
