"""The pyfunc model every training path logs: raw rows in, labels (or labels plus class
probabilities) out.

The fitted scikit-learn pipeline is stored with skops next to the list of types it needs, and this
class loads it; nothing is unpickled. Like `estimators`, this module travels inside the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

PIPELINE_ARTIFACT = "pipeline"
TRUSTED_TYPES_ARTIFACT = "trusted_types"
PROBABILITIES_PARAM = "return_probabilities"
# In the model's config: the columns its signature declares `any` because they hold whole numbers.
WHOLE_NUMBER_COLUMNS = "whole_number_columns"
# Probabilities closer than this leave the label to the estimator's own `predict` (ties, rounding).
TIE_MARGIN = 1e-9


def as_trained(model_input: pd.DataFrame, whole_number_columns: list[str]) -> pd.DataFrame:
    """Whole-number columns as the float64 the model was trained on (they arrive as int64 from
    `pd.read_csv`, or with missing values as float64); text in one is refused in one line."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    converted = {}
    for name in whole_number_columns:
        if name in model_input.columns and model_input[name].dtype != "float64":
            try:
                converted[name] = pd.to_numeric(model_input[name], errors="raise").astype("float64")
            except (TypeError, ValueError):
                raise MlflowException(
                    f"column '{name}' holds values that are not numbers; expected whole numbers or missing values",
                    error_code=INVALID_PARAMETER_VALUE,
                ) from None
    return model_input.assign(**converted) if converted else model_input


def probability_frame(pipeline, features: pd.DataFrame) -> pd.DataFrame:
    """Predicted labels plus one `probability_<class>` column per class, in the model's class order,
    from one pass of the model.

    The label is the most probable class, as every classifier this project trains decides it;
    where the two most probable classes are within `TIE_MARGIN`, the pipeline's own `predict`
    decides those rows (a logistic regression breaks a tie by the sign of its decision value), so
    the labels always equal `predict`'s.
    """
    proba = np.asarray(pipeline.predict_proba(features))
    labels = np.asarray(pipeline.classes_)[proba.argmax(axis=1)]
    if proba.shape[1] > 1:
        top_two = np.partition(proba, -2, axis=1)[:, -2:]
        close = np.flatnonzero(top_two[:, 1] - top_two[:, 0] < TIE_MARGIN)
        if close.size:
            labels[close] = np.asarray(pipeline.predict(features.iloc[close]))
    frame = pd.DataFrame({"prediction": labels})
    for index, label in enumerate(pipeline.classes_):
        frame[f"probability_{label}"] = proba[:, index]
    return frame


class TabularModel(mlflow.pyfunc.PythonModel):
    """Serves a fitted pipeline; pass params {"return_probabilities": true} for class probabilities."""

    def load_context(self, context):
        import skops.io as sio

        trusted = json.loads(Path(context.artifacts[TRUSTED_TYPES_ARTIFACT]).read_text())
        self.pipeline = sio.load(context.artifacts[PIPELINE_ARTIFACT], trusted=trusted)
        self.whole_number_columns = list((context.model_config or {}).get(WHOLE_NUMBER_COLUMNS, []))

    # `pd.DataFrame` is a hint MLflow infers no schema from: the model's own signature checks input,
    # and MLflow no longer warns that `predict` has no type hints.
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):  # noqa: ARG002 - pyfunc signature
        model_input = as_trained(model_input, getattr(self, "whole_number_columns", []))
        if (params or {}).get(PROBABILITIES_PARAM) and hasattr(self.pipeline, "predict_proba"):
            return probability_frame(self.pipeline, model_input)
        return self.pipeline.predict(model_input)
