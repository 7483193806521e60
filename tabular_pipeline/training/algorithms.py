"""The algorithms this project trains: their names, their estimators with this project's defaults and
threads, and the hyperparameters each accepts."""

from __future__ import annotations

from collections.abc import Mapping

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.parameters.hyperparameters import validate_hyperparameters
from tabular_pipeline.parameters.strings import ParamValue

ALGORITHMS = ("lr", "svm", "lightgbm", "xgboost")
BOOSTER_TREES = 500
BOOSTER_LEARNING_RATE = 0.05
# Other spellings users write (compared lower-case, without '_', '-' and spaces).
ALGORITHM_ALIASES = {
    "logisticregression": "lr",
    "logreg": "lr",
    "svc": "svm",
    "svr": "svm",
    "lgbm": "lightgbm",
    "xgb": "xgboost",
}


def normalise_algorithm(name: str) -> str:
    """Map a user's algorithm name (any case: "LightGBM", "LogisticRegression", "XGboost") to one of `ALGORITHMS`."""
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

        # Class probabilities come from calibration around it (`pipelines.needs_calibration`).
        return SVR() if regression else SVC(random_state=seed)
    # Boosters get more, smaller steps than the libraries' defaults; early stopping
    # (`EarlyStoppedBooster`) decides how many of the trees are actually used.
    if algorithm == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        cls = LGBMRegressor if regression else LGBMClassifier
        return cls(
            n_estimators=BOOSTER_TREES,
            learning_rate=BOOSTER_LEARNING_RATE,
            random_state=seed,
            verbose=-1,
            n_jobs=threads,
        )
    from xgboost import XGBClassifier, XGBRegressor

    cls = XGBRegressor if regression else XGBClassifier
    return cls(
        n_estimators=BOOSTER_TREES,
        learning_rate=BOOSTER_LEARNING_RATE,
        random_state=seed,
        tree_method="hist",
        n_jobs=threads,
    )


def needs_calibration(algorithm: str, task: str) -> bool:
    """Whether the classifier gets its probabilities from `CalibratedClassifierCV` (an SVM: SVC's
    own `probability=True` is deprecated since scikit-learn 1.9, with this as its replacement)."""
    return algorithm == "svm" and task != "regression"


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
