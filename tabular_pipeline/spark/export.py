"""Exporting a model trained on Spark into the scikit-learn pipeline the pandas engine logs, so that
it serves anywhere without Spark or Java: raw columns in, original labels and probabilities out.

- XGBoost: the trained booster itself, loaded into `XGBClassifier`/`XGBRegressor`.
- LogisticRegression, LinearRegression: coefficients and intercepts into scikit-learn's classes
  (Spark standardises internally but reports coefficients on the original scale).
- LinearSVC: its coefficients scaled by the Platt fit on its margins (`SvmCalibration`), which
  is a logistic model: the same probabilities and labels as the cluster's scoring.
- Categories: one `OrdinalEncoder` (XGBoost) or `OneHotEncoder` (linear) per column, with
  StringIndexer's labels in its order; unseen values get the index after them (XGBoost) or all
  zeros (linear), as on the cluster. Missing numbers get the Spark imputer's medians.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tabular_pipeline.spark.encoding import MISSING_CATEGORY, FeatureColumns


@dataclass(frozen=True)
class SvmCalibration:
    """Platt scaling of a LinearSVC margin m: P(positive) = 1 / (1 + exp(-(slope * m + intercept)))."""

    slope: float
    intercept: float


@dataclass(frozen=True)
class TrainedEncoding:
    """What the cluster learnt about the inputs: category labels in index order, medians."""

    columns: FeatureColumns
    category_labels: dict[str, list[str]]
    medians: dict[str, float]


def fit_on_labels(transformer, frame_columns: list[str], labels: list[list]):
    """Fit a transformer whose categories are given, on a small frame holding each label once."""
    rows = max((len(values) for values in labels), default=1) or 1
    frame = pd.DataFrame(
        {
            name: [values[i % len(values)] for i in range(rows)]
            for name, values in zip(frame_columns, labels, strict=True)
        }
    )
    return transformer.fit(frame)


def build_preprocessor(encoding: TrainedEncoding, linear: bool):
    """The fitted ColumnTransformer that reproduces the cluster's model input from raw columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder

    from tabular_pipeline.serving.estimators import to_text

    columns = encoding.columns
    transformers = []
    if columns.numeric and not linear:
        transformers.append(("numeric", "passthrough", columns.numeric))
    for name in columns.numeric if linear else []:
        imputer = SimpleImputer(strategy="constant", fill_value=encoding.medians[name], keep_empty_features=True)
        transformers.append((f"numeric_{name}", imputer, [name]))
    for name in columns.categorical:
        labels = encoding.category_labels[name]
        if linear:
            encoder = OneHotEncoder(categories=[labels], handle_unknown="ignore", sparse_output=False)
        else:
            encoder = OrdinalEncoder(categories=[labels], handle_unknown="use_encoded_value", unknown_value=len(labels))
        as_text = FunctionTransformer(to_text, feature_names_out="one-to-one")
        transformers.append((f"categorical_{name}", make_pipeline(as_text, encoder), [name]))
    preprocessor = ColumnTransformer(
        transformers, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False
    )
    names = columns.numeric + columns.categorical
    values = [[0.0] for _ in columns.numeric] + [encoding.category_labels[name] for name in columns.categorical]
    return fit_on_labels(preprocessor, names, values)


def linear_estimator(model, task: str, calibration: SvmCalibration | None):
    """A scikit-learn linear model carrying a Spark model's coefficients (or an SVM's, calibrated)."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    if task == "regression":
        estimator = LinearRegression()
        estimator.coef_ = np.asarray(model.coefficients.toArray(), dtype=float)
        estimator.intercept_ = float(model.intercept)
    else:
        estimator = LogisticRegression()
        if calibration is not None:
            coefficients = calibration.slope * np.asarray(model.coefficients.toArray(), dtype=float)[None, :]
            intercepts = np.asarray([calibration.slope * model.intercept + calibration.intercept])
        elif task == "binary":
            coefficients = np.asarray(model.coefficients.toArray(), dtype=float)[None, :]
            intercepts = np.asarray([model.intercept])
        else:
            coefficients = np.asarray(model.coefficientMatrix.toArray(), dtype=float)
            intercepts = np.asarray(model.interceptVector.toArray(), dtype=float)
        estimator.coef_, estimator.intercept_ = coefficients, intercepts
        estimator.classes_ = np.arange(max(2, coefficients.shape[0]))
    estimator.n_features_in_ = np.shape(estimator.coef_)[-1]
    return estimator


def booster_estimator(model, task: str):
    """The trained XGBoost booster inside scikit-learn's XGBoost class."""
    from xgboost import XGBClassifier, XGBRegressor

    estimator = XGBRegressor() if task == "regression" else XGBClassifier()
    estimator.load_model(bytearray(model.get_booster().save_raw("ubj")))
    return estimator


def export_pipeline(
    algorithm: str,
    task: str,
    encoding: TrainedEncoding,
    estimator_model,
    classes: list,
    calibration: SvmCalibration | None = None,
):
    """The scikit-learn Pipeline ("preprocess", "model") equivalent to the cluster's model.

    Args:
        algorithm: "xgboost", "lr" or "svm".
        task: the learning task.
        encoding: the trained category labels and medians.
        estimator_model: the fitted Spark model (the last stage of the Spark pipeline).
        classes: the class values in code order (empty for regression).
        calibration: the Platt fit, for an SVM.
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import LabelEncoder

    from tabular_pipeline.serving.estimators import LabelEncodedClassifier

    linear = algorithm != "xgboost"
    estimator = (
        linear_estimator(estimator_model, task, calibration) if linear else booster_estimator(estimator_model, task)
    )
    if task != "regression":
        encoder = LabelEncoder().fit(np.asarray(classes))
        estimator = LabelEncodedClassifier.from_fitted(estimator, encoder)
    return Pipeline([("preprocess", build_preprocessor(encoding, linear)), ("model", estimator)])


def trained_encoding(pipeline_model, columns: FeatureColumns) -> TrainedEncoding:
    """Category labels (StringIndexer order) and medians (Imputer surrogates) from the fitted stages."""
    from pyspark.ml.feature import ImputerModel, StringIndexerModel

    labels: dict[str, list[str]] = {}
    medians: dict[str, float] = {}
    for stage in pipeline_model.stages:
        if isinstance(stage, StringIndexerModel):
            labels = {name: list(values) for name, values in zip(columns.categorical, stage.labelsArray, strict=True)}
        elif isinstance(stage, ImputerModel):
            row = stage.surrogateDF.first()
            medians = {name: float(row[name]) for name in columns.numeric}
    for name in columns.categorical:
        labels.setdefault(name, [MISSING_CATEGORY])
    return TrainedEncoding(columns, labels, medians)
