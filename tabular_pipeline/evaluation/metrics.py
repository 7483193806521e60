"""Test-set metrics with the same names for every algorithm and training path."""

from __future__ import annotations

import numpy as np
import pandas as pd

PRIMARY_METRIC = {"binary": "test_roc_auc", "multiclass": "test_f1_macro", "regression": "test_rmse"}
# Whether a larger primary metric is better (RMSE is an error, the others are scores).
GREATER_IS_BETTER = {"binary": True, "multiclass": True, "regression": False}


def scoring_for_task(task: str) -> str:
    """The primary cross-validation score: ROC AUC, macro F1 or (negated) RMSE."""
    return {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "neg_root_mean_squared_error"}[task]


def classification_metrics(
    y_true: pd.Series,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    classes: np.ndarray,
    sample_weight: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy, macro F1/precision/recall, and ROC AUC and log loss when probabilities exist.

    Args:
        y_true: true labels.
        y_pred: predicted labels.
        proba: class probabilities, columns in the order of `classes`, or None.
        classes: the class labels the model knows.
        sample_weight: how many rows each entry stands for (a confusion matrix's cells, as
            `predict` counts them), or None for one row each.

    Returns:
        Metric names (``test_*``) mapped to values.
    """
    from sklearn import metrics

    weights = {"sample_weight": sample_weight}
    scores = {
        "test_accuracy": metrics.accuracy_score(y_true, y_pred, **weights),
        "test_f1_macro": metrics.f1_score(y_true, y_pred, average="macro", zero_division=0, **weights),
        "test_precision_macro": metrics.precision_score(y_true, y_pred, average="macro", zero_division=0, **weights),
        "test_recall_macro": metrics.recall_score(y_true, y_pred, average="macro", zero_division=0, **weights),
    }
    present = np.isin(np.asarray(y_true), classes)
    if proba is not None and present.all() and pd.Series(y_true).nunique() > 1:
        if len(classes) == 2:
            scores["test_roc_auc"] = metrics.roc_auc_score(y_true == classes[1], proba[:, 1], **weights)
        else:
            scores["test_roc_auc"] = metrics.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes, **weights)
        scores["test_log_loss"] = metrics.log_loss(y_true, proba, labels=classes, **weights)
    return {name: float(value) for name, value in scores.items()}


def regression_metrics(y_true: pd.Series, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² on the test set."""
    from sklearn import metrics

    return {
        "test_rmse": float(metrics.root_mean_squared_error(y_true, y_pred)),
        "test_mae": float(metrics.mean_absolute_error(y_true, y_pred)),
        "test_r2": float(metrics.r2_score(y_true, y_pred)),
    }


def unpack_served_output(
    output, y_true: pd.Series, task: str
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(predictions, probabilities, classes) from a pyfunc model's answer.

    Args:
        output: labels or values, or a frame with `prediction` and `probability_<class>` columns.
        y_true: the true labels; class names in column headers are matched to their values.
        task: the learning task.

    Returns:
        Probabilities and classes are None for regression and for answers without probabilities.
    """
    if task == "regression":
        return np.asarray(output, dtype=float).ravel(), None, None
    if not isinstance(output, pd.DataFrame):
        return np.asarray(output).ravel(), None, None
    columns = [c for c in output.columns if str(c).startswith("probability_")]
    by_text = {str(value): value for value in pd.unique(y_true)}
    classes = np.asarray([by_text.get(str(c)[len("probability_") :], str(c)[len("probability_") :]) for c in columns])
    return output["prediction"].to_numpy(), output[columns].to_numpy(), classes


def metrics_from_served_output(output, y_true: pd.Series, task: str) -> dict[str, float]:
    """Metrics from a pyfunc model's answer: labels, or a frame with `prediction` and `probability_<class>`.

    Args:
        output: what `PyFuncModel.predict` returned (with `return_probabilities` for classifiers).
        y_true: the true labels.
        task: the learning task.

    Returns:
        The same metric names as `evaluate_model`; probability metrics only when probabilities came back.
    """
    predictions, probabilities, classes = unpack_served_output(output, y_true, task)
    if task == "regression":
        return regression_metrics(y_true, predictions)
    return classification_metrics(
        y_true, predictions, probabilities, classes if classes is not None else np.unique(y_true)
    )


def evaluate_model(model, test_features: pd.DataFrame, test_label: pd.Series, task: str) -> dict[str, float]:
    """Score a fitted model on the held-out test split.

    Args:
        model: a fitted pipeline.
        test_features: the test rows without the label.
        test_label: the true test labels.
        task: "binary", "multiclass" or "regression".

    Returns:
        Metric names mapped to values.
    """
    predictions = model.predict(test_features)
    if task == "regression":
        return regression_metrics(test_label, predictions)
    proba = model.predict_proba(test_features) if hasattr(model, "predict_proba") else None
    return classification_metrics(test_label, predictions, proba, np.asarray(model.classes_))
