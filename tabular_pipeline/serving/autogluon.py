"""The pyfunc model an AutoGluon search logs: raw rows in, labels (or labels plus class
probabilities) out, with the same contract as the project's other models.

The model carries AutoGluon's deployment copy of the fitted predictor as an artifact folder, and
AutoGluon loads it (with pickle: a model is as trusted as the registry that holds it). Like the
rest of `serving/`, this module travels inside the model and imports nothing else of the project;
AutoGluon itself is imported only when such a model is loaded.
"""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from tabular_pipeline.serving.model import PROBABILITIES_PARAM, WHOLE_NUMBER_COLUMNS, as_trained

PREDICTOR_ARTIFACT = "predictor"


class _NoTorchGpuCheckNotice(logging.Filter):
    """AutoGluon asks PyTorch how many GPUs there are before each fit and prediction, and logs an
    error each time PyTorch is not installed. This project installs no PyTorch and trains on CPU
    only, so that line carries no news; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to import torch" not in record.getMessage()


def quiet_gpu_check() -> None:
    """Hold back AutoGluon's "Failed to import torch" notice (see `_NoTorchGpuCheckNotice`)."""
    notices = logging.getLogger("autogluon.common.utils.resource_utils")
    if not any(isinstance(item, _NoTorchGpuCheckNotice) for item in notices.filters):
        notices.addFilter(_NoTorchGpuCheckNotice())


class AutoGluonClassifier(ClassifierMixin, BaseEstimator):
    """A fitted `TabularPredictor` seen as a scikit-learn classifier (labels in their original values,
    probabilities in `classes_` order), for evaluation and serving alike."""

    def __init__(self, predictor=None):
        self.predictor = predictor

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.predictor.class_labels)

    def fit(self, X, y):  # noqa: ARG002 - AutoGluon fits in the training step, never here
        raise NotImplementedError("an AutoGluon predictor is fitted by the train_automl step")

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predictor.predict(X, as_pandas=False)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self._normalised(self.predictor.predict_proba(X, as_pandas=True))

    def _normalised(self, frame: pd.DataFrame) -> np.ndarray:
        # AutoGluon's float32 rows sum to 1 only within float32 rounding; scorers such as log loss warn on that.
        proba = frame[list(self.predictor.class_labels)].to_numpy(dtype="float64")
        return proba / proba.sum(axis=1, keepdims=True)

    def probability_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """Labels plus `probability_<class>` columns from one pass of the ensemble (labels from the
        probabilities, so they agree, and any decision threshold AutoGluon calibrated applies)."""
        proba = self.predictor.predict_proba(X, as_pandas=True)
        frame = pd.DataFrame({"prediction": np.asarray(self.predictor.predict_from_proba(proba))})
        for label, column in zip(self.classes_, self._normalised(proba).T, strict=True):
            frame[f"probability_{label}"] = column
        return frame

    def __sklearn_is_fitted__(self) -> bool:
        return True


class AutoGluonRegressor(RegressorMixin, BaseEstimator):
    """A fitted regression `TabularPredictor` seen as a scikit-learn regressor."""

    def __init__(self, predictor=None):
        self.predictor = predictor

    def fit(self, X, y):  # noqa: ARG002 - AutoGluon fits in the training step, never here
        raise NotImplementedError("an AutoGluon predictor is fitted by the train_automl step")

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.predictor.predict(X, as_pandas=False), dtype="float64")

    def __sklearn_is_fitted__(self) -> bool:
        return True


def as_estimator(predictor) -> AutoGluonClassifier | AutoGluonRegressor:
    """The scikit-learn view of a fitted predictor, by its problem type."""
    return AutoGluonRegressor(predictor) if predictor.problem_type == "regression" else AutoGluonClassifier(predictor)


def load_predictor(path: str):
    """Load a predictor folder and keep its models in memory, so a request does not read them from disk."""
    from autogluon.tabular import TabularPredictor

    quiet_gpu_check()
    predictor = TabularPredictor.load(path, verbosity=0)
    predictor.persist(models="best")
    return predictor


class AutoGluonModel(mlflow.pyfunc.PythonModel):
    """Serves a fitted AutoGluon predictor; pass params {"return_probabilities": true} for class
    probabilities."""

    def load_context(self, context):
        self.estimator = as_estimator(load_predictor(context.artifacts[PREDICTOR_ARTIFACT]))
        self.whole_number_columns = list((context.model_config or {}).get(WHOLE_NUMBER_COLUMNS, []))

    # `pd.DataFrame` is a hint MLflow infers no schema from: the model's own signature checks input.
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):  # noqa: ARG002 - pyfunc signature
        model_input = as_trained(model_input, getattr(self, "whole_number_columns", []))
        if (params or {}).get(PROBABILITIES_PARAM) and isinstance(self.estimator, AutoGluonClassifier):
            return self.estimator.probability_frame(model_input)
        return self.estimator.predict(model_input)
