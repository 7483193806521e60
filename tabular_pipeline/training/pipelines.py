"""Building the scikit-learn Pipeline for an algorithm and task, and its search space."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from tabular_pipeline.parameters.strings import Scalar
from tabular_pipeline.training.algorithms import base_estimator, needs_calibration

# The wrapper settings logged next to the estimator's own hyperparameters.
STOPPING_SETTINGS = ("validation_fraction", "stopping_rounds", "min_rows")


@dataclass(frozen=True)
class FeatureColumns:
    """The feature columns, by how they are preprocessed."""

    numeric: list[str]
    categorical: list[str]


def split_feature_columns(features: pd.DataFrame) -> FeatureColumns:
    """Sort feature columns into numeric and categorical (text, category and boolean)."""
    numeric, categorical = [], []
    for name, series in features.items():
        if ptypes.is_bool_dtype(series) or not ptypes.is_numeric_dtype(series):
            categorical.append(str(name))
        else:
            numeric.append(str(name))
    return FeatureColumns(numeric=numeric, categorical=categorical)


def uses_native_categories(algorithm: str) -> bool:
    """LightGBM and XGBoost split on category codes directly, which beats one-hot columns for
    high-cardinality features; linear models and SVMs need one-hot encoding."""
    return algorithm in ("lightgbm", "xgboost")


def build_preprocessor(algorithm: str, columns: FeatureColumns):
    """Return the ColumnTransformer that turns raw columns into model input.

    Linear models and SVMs get median imputation with missing indicators, scaling, and one-hot
    categories (unseen ones ignored). Boosters take NaN natively and get ordinal category codes
    (unseen categories become missing); the numeric columns come first, then the categorical ones.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

    from tabular_pipeline.serving.estimators import to_text

    as_text = FunctionTransformer(to_text, feature_names_out="one-to-one")
    if uses_native_categories(algorithm):
        numeric = "passthrough"
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan)
    else:
        numeric = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler()
        )
        encoder = OneHotEncoder(handle_unknown="ignore", min_frequency=5, max_categories=50)
    categorical = make_pipeline(as_text, encoder)
    transformers = []
    if columns.numeric:
        transformers.append(("numeric", numeric, columns.numeric))
    if columns.categorical:
        transformers.append(("categorical", categorical, columns.categorical))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False)


# A minority class below this share of the majority counts as imbalanced.
IMBALANCE_RATIO = 0.25


def data_dependent_defaults(algorithm: str, task: str, label: pd.Series, columns: FeatureColumns) -> dict[str, object]:
    """Defaults that depend on the training data; user hyperparameters override them.

    - Imbalanced classes are re-weighted (`class_weight="balanced"`, or XGBoost's
      `scale_pos_weight` for binary tasks).
    - XGBoost is told which input columns are category codes.

    Args:
        algorithm: one of `ALGORITHMS`.
        task: the learning task.
        label: the training labels.
        columns: the feature columns by kind.

    Returns:
        Estimator hyperparameters.
    """
    defaults: dict[str, object] = {}
    if task != "regression":
        counts = label.value_counts()
        if counts.min() < IMBALANCE_RATIO * counts.max():
            if algorithm == "xgboost":
                if task == "binary":
                    # The wrapper encodes labels in sorted order, so the positive class is the last.
                    ordered = counts.sort_index()
                    defaults["scale_pos_weight"] = float(ordered.iloc[0] / ordered.iloc[-1])
            else:
                defaults["class_weight"] = "balanced"
    if algorithm == "xgboost" and columns.categorical:
        defaults["enable_categorical"] = True
        defaults["feature_types"] = ["q"] * len(columns.numeric) + ["c"] * len(columns.categorical)
    return defaults


def fit_params_for(algorithm: str, columns: FeatureColumns) -> dict[str, object]:
    """Arguments for `Pipeline.fit`: LightGBM learns which inputs are category codes at fit time."""
    if algorithm == "lightgbm" and columns.categorical:
        first = len(columns.numeric)
        return {"model__categorical_feature": list(range(first, first + len(columns.categorical)))}
    return {}


def build_pipeline(
    algorithm: str,
    task: str,
    fixed_params: Mapping[str, Scalar],
    columns: FeatureColumns,
    seed: int,
    defaults: Mapping[str, object] | None = None,
    threads: int = 1,
):
    """Assemble preprocessing and the estimator into one Pipeline.

    Args:
        algorithm: one of `ALGORITHMS`.
        task: "binary", "multiclass" or "regression".
        fixed_params: validated hyperparameters for the estimator.
        columns: the feature columns by kind.
        seed: the random seed.
        defaults: data-dependent defaults (`data_dependent_defaults`), overridden by `fixed_params`.
        threads: booster threads per fit (`booster_threads`); `n_jobs` in `fixed_params` wins.

    Returns:
        An unfitted `sklearn.pipeline.Pipeline` with steps "preprocess" and "model".
    """
    from sklearn.pipeline import Pipeline

    from tabular_pipeline.serving.estimators import EarlyStoppedBooster, LabelEncodedClassifier

    estimator = base_estimator(algorithm, task, seed, threads).set_params(
        **{**dict(defaults or {}), **dict(fixed_params)}
    )
    if uses_native_categories(algorithm):
        estimator = EarlyStoppedBooster(estimator, random_state=seed)
    if needs_calibration(algorithm, task):
        from sklearn.calibration import CalibratedClassifierCV

        # Platt scaling on cross-validated decision values, refitted on all rows: what SVC's
        # deprecated `probability=True` did, with predictions that agree with the probabilities.
        estimator = CalibratedClassifierCV(estimator, method="sigmoid", ensemble=False)
    model = estimator if task == "regression" else LabelEncodedClassifier(estimator)
    return Pipeline([("preprocess", build_preprocessor(algorithm, columns)), ("model", model)])


def estimator_param_prefix(task: str, algorithm: str) -> str:
    """The Pipeline parameter prefix that reaches the estimator's own hyperparameters, through
    the label-encoding wrapper (classifiers), the early-stopping wrapper (boosters) and the
    calibration around an SVM classifier."""
    prefix = "model__" if task == "regression" else "model__estimator__"
    wrapped = uses_native_categories(algorithm) or needs_calibration(algorithm, task)
    return prefix + "estimator__" if wrapped else prefix


def effective_hyperparameters(pipeline, task: str, algorithm: str) -> dict[str, object]:
    """All hyperparameters the estimator used, defaults and early-stopping settings included."""
    prefix = estimator_param_prefix(task, algorithm)
    params = pipeline.get_params(deep=True)
    effective = {
        name[len(prefix) :]: value
        for name, value in params.items()
        if name.startswith(prefix) and "__" not in name[len(prefix) :]
    }
    if uses_native_categories(algorithm):
        wrapper = prefix[: -len("estimator__")]
        effective.update({name: params[wrapper + name] for name in STOPPING_SETTINGS})
    return effective
