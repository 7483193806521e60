"""The pyfunc model an auto-sklearn search logs: raw rows in, labels (or labels plus class
probabilities) out, with the same contract as the project's other models.

It travels inside the model (code_paths) and runs on Python 3.9 with auto-sklearn's old pins, so it
imports nothing from the main project.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

ESTIMATOR_ARTIFACT = "estimator"
COLUMNS_ARTIFACT = "columns"
PROBABILITIES_PARAM = "return_probabilities"


def describe_columns(features: pd.DataFrame, classes: list | None) -> dict:
    """What the model needs to rebuild its input frame: column order, categories, and the classes.

    Args:
        features: the training features as auto-sklearn saw them.
        classes: the class labels in index order, or None for regression.

    Returns:
        A JSON-ready description.
    """
    categorical = {}
    for name in features.columns:
        if isinstance(features[name].dtype, pd.CategoricalDtype):
            categorical[str(name)] = [str(value) for value in features[name].cat.categories]
    return {"columns": [str(name) for name in features.columns], "categorical": categorical, "classes": classes}


def as_model_frame(rows: pd.DataFrame, description: dict) -> pd.DataFrame:
    """Raw rows as auto-sklearn expects them: training column order, training categories (unseen
    values become missing), and every other column as float.

    Args:
        rows: the request's rows; extra columns are ignored.
        description: what `describe_columns` returned.

    Returns:
        The frame to predict on.
    """
    missing = [name for name in description["columns"] if name not in rows.columns]
    if missing:
        raise ValueError(f"input is missing columns {missing}; expected {description['columns']}")
    frame = pd.DataFrame(index=rows.index)
    for name in description["columns"]:
        if name in description["categorical"]:
            values = rows[name].astype("object").where(rows[name].notna(), None)
            text = values.map(lambda value: None if value is None else str(value))
            frame[name] = pd.Categorical(text, categories=description["categorical"][name])
        else:
            frame[name] = pd.to_numeric(rows[name], errors="coerce").astype("float64")
    return frame


def class_probability_frame(predictions: np.ndarray, probabilities: np.ndarray, classes: list) -> pd.DataFrame:
    """Labels plus one `probability_<class>` column per class, in the classes' order."""
    frame = pd.DataFrame({"prediction": predictions})
    for index, label in enumerate(classes):
        frame[f"probability_{label}"] = probabilities[:, index]
    return frame


class AutoSklearnModel(mlflow.pyfunc.PythonModel):
    """Serves a fitted auto-sklearn ensemble; pass params {"return_probabilities": true} for
    class probabilities."""

    def load_context(self, context):
        import cloudpickle

        with open(context.artifacts[ESTIMATOR_ARTIFACT], "rb") as handle:
            self.estimator = cloudpickle.load(handle)
        self.description = json.loads(Path(context.artifacts[COLUMNS_ARTIFACT]).read_text())

    # `pd.DataFrame` is a hint MLflow infers no schema from: the model's own signature checks input,
    # and MLflow no longer warns that `predict` has no type hints.
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):  # noqa: ARG002 - pyfunc signature
        frame = as_model_frame(pd.DataFrame(model_input), self.description)
        classes = self.description["classes"]
        if classes is None:
            return self.estimator.predict(frame).astype("float64")
        indices = np.asarray(self.estimator.predict(frame)).astype(int)
        labels = np.asarray(classes, dtype=object)[indices]
        labels = pd.Series(labels).infer_objects().to_numpy()
        if (params or {}).get(PROBABILITIES_PARAM):
            return class_probability_frame(labels, np.asarray(self.estimator.predict_proba(frame)), classes)
        return labels
