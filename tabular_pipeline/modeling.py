"""Building the scikit-learn Pipeline for an algorithm and task, and its search space."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.params import ParamValue, Scalar, validate_hyperparameters

ALGORITHMS = ("lr", "svm", "lightgbm", "xgboost")
BOOSTER_TREES = 500
BOOSTER_LEARNING_RATE = 0.05
# The wrapper settings logged next to the estimator's own hyperparameters.
STOPPING_SETTINGS = ("validation_fraction", "stopping_rounds", "min_rows")
# Randomised search replaces an exhaustive grid above this many candidates.
MAX_GRID_CANDIDATES = 20


# Other spellings users write (compared lower-case, without '_', '-' and spaces).
ALGORITHM_ALIASES = {"logisticregression": "lr", "logreg": "lr", "svc": "svm", "svr": "svm", "lgbm": "lightgbm", "xgb": "xgboost"}


def normalise_algorithm(name: str) -> str:
    """Map a user's algorithm name (any case, e.g. "LightGBM", "LogisticRegression", "XGboost") to one of `ALGORITHMS`."""
    key = "".join((name or "").split()).lower().replace("_", "").replace("-", "")
    key = ALGORITHM_ALIASES.get(key, key)
    if key not in ALGORITHMS:
        raise PipelineError(f"algorithm '{name}' is not supported; expected one of lr, svm, lightgbm, xgboost")
    return key


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers narrow)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def booster_threads(parallel_fits: int = 1) -> int:
    """Threads per booster fit: the usable cores shared by the fits a search runs at once."""
    return max(1, usable_cores() // max(1, parallel_fits))


def base_estimator(algorithm: str, task: str, seed: int, threads: int = 1):
    """Return the untrained estimator with this project's defaults.

    Args:
        algorithm: one of `ALGORITHMS`.
        task: "binary", "multiclass" or "regression".
        seed: the random seed for estimators that use one.
        threads: threads for LightGBM and XGBoost (`booster_threads`); the others use one.

    Returns:
        A scikit-learn compatible estimator.
    """
    regression = task == "regression"
    if algorithm == "lr":
        from sklearn.linear_model import LogisticRegression, Ridge

        return Ridge() if regression else LogisticRegression(max_iter=2000)
    if algorithm == "svm":
        from sklearn.svm import SVC, SVR

        return SVR() if regression else SVC(probability=True, random_state=seed)
    # Boosters get more, smaller steps than the libraries' defaults; early stopping
    # (`EarlyStoppedBooster`) decides how many of the trees are actually used.
    if algorithm == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        cls = LGBMRegressor if regression else LGBMClassifier
        return cls(n_estimators=BOOSTER_TREES, learning_rate=BOOSTER_LEARNING_RATE, random_state=seed, verbose=-1, n_jobs=threads)
    from xgboost import XGBClassifier, XGBRegressor

    cls = XGBRegressor if regression else XGBClassifier
    return cls(n_estimators=BOOSTER_TREES, learning_rate=BOOSTER_LEARNING_RATE, random_state=seed, tree_method="hist", n_jobs=threads)


def allowed_hyperparameters(algorithm: str, task: str) -> dict[str, object]:
    """The estimator's own parameters and defaults: the allowlist for user hyperparameters."""
    return {
        name: value
        for name, value in base_estimator(algorithm, task, seed=0).get_params(deep=False).items()
        if "__" not in name
    }


def check_hyperparameters(params: Mapping[str, ParamValue], algorithm: str, task: str) -> None:
    """Validate hyperparameter names and value types for the algorithm, without training."""
    validate_hyperparameters(params, allowed_hyperparameters(algorithm, task), algorithm)


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

    from tabular_pipeline.estimators import to_text

    as_text = FunctionTransformer(to_text, feature_names_out="one-to-one")
    if uses_native_categories(algorithm):
        numeric = "passthrough"
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan)
    else:
        numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler())
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

    from tabular_pipeline.estimators import EarlyStoppedBooster, LabelEncodedClassifier

    estimator = base_estimator(algorithm, task, seed, threads).set_params(**{**dict(defaults or {}), **dict(fixed_params)})
    if uses_native_categories(algorithm):
        estimator = EarlyStoppedBooster(estimator, random_state=seed)
    model = estimator if task == "regression" else LabelEncodedClassifier(estimator)
    return Pipeline([("preprocess", build_preprocessor(algorithm, columns)), ("model", model)])


def estimator_param_prefix(task: str, algorithm: str) -> str:
    """The Pipeline parameter prefix that reaches the estimator's own hyperparameters, through
    the label-encoding wrapper (classifiers) and the early-stopping wrapper (boosters)."""
    prefix = "model__" if task == "regression" else "model__estimator__"
    return prefix + "estimator__" if uses_native_categories(algorithm) else prefix


def effective_hyperparameters(pipeline, task: str, algorithm: str) -> dict[str, object]:
    """All hyperparameters the estimator used, defaults and early-stopping settings included."""
    prefix = estimator_param_prefix(task, algorithm)
    params = pipeline.get_params(deep=True)
    effective = {name[len(prefix) :]: value for name, value in params.items() if name.startswith(prefix) and "__" not in name[len(prefix) :]}
    if uses_native_categories(algorithm):
        wrapper = prefix[: -len("estimator__")]
        effective.update({name: params[wrapper + name] for name in STOPPING_SETTINGS})
    return effective


def scoring_for_task(task: str) -> str:
    """The primary cross-validation score: ROC AUC, macro F1 or (negated) RMSE."""
    return {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "neg_root_mean_squared_error"}[task]


def count_candidates(grid: Mapping[str, list]) -> int:
    """How many combinations an exhaustive search over `grid` would fit."""
    return int(np.prod([len(values) for values in grid.values()]))


def build_search(pipeline, grid: Mapping[str, list], task: str, algorithm: str, cv: int, seed: int, n_jobs: int = 1):
    """Wrap the pipeline in a cross-validated search over `grid`.

    An exhaustive grid is used up to `MAX_GRID_CANDIDATES` candidates, a randomised search beyond.

    Args:
        pipeline: the unfitted pipeline.
        grid: estimator hyperparameter names mapped to the values to try.
        task: the learning task (picks the scoring and the fold splitter).
        algorithm: which estimator the pipeline holds (picks the parameter prefix).
        cv: the number of folds (at least 2).
        seed: the random seed of folds and sampling.
        n_jobs: parallel fits.

    Returns:
        An unfitted GridSearchCV or RandomizedSearchCV.
    """
    from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV, StratifiedKFold

    if cv < 2:
        raise PipelineError(f"cv is {cv}; expected at least 2 folds for a search")
    prefix = estimator_param_prefix(task, algorithm)
    space = {prefix + name: values for name, values in grid.items()}
    folds = KFold(cv, shuffle=True, random_state=seed) if task == "regression" else StratifiedKFold(cv, shuffle=True, random_state=seed)
    candidates = count_candidates(grid)
    common = dict(scoring=scoring_for_task(task), cv=folds, n_jobs=n_jobs, refit=True, error_score="raise")
    if candidates <= MAX_GRID_CANDIDATES:
        return GridSearchCV(pipeline, space, **common)
    return RandomizedSearchCV(pipeline, space, n_iter=MAX_GRID_CANDIDATES, random_state=seed, **common)


def search_results_table(search) -> pd.DataFrame:
    """One row per candidate: its parameters, mean and std score, and rank."""
    results = pd.DataFrame(search.cv_results_)
    keep = [c for c in results.columns if c.startswith("param_")] + ["mean_test_score", "std_test_score", "rank_test_score", "mean_fit_time"]
    table = results[keep].rename(columns=lambda c: c.rsplit("__", 1)[-1] if c.startswith("param_") else c)
    return table.sort_values("rank_test_score").reset_index(drop=True)
