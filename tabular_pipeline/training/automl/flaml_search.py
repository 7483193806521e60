"""AutoML with FLAML: validated settings, the search on this project's preprocessed features, and
a servable pipeline around the best estimator FLAML retrained."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.parameters.hyperparameters import check_single_values, validate_hyperparameters
from tabular_pipeline.parameters.strings import ParamValue

# Learners that take missing values natively, so one preprocessing serves the whole search.
FLAML_LEARNERS = ("lgbm", "xgboost", "xgb_limitdepth", "rf", "extra_tree", "histgb")
# FLAML.fit settings a user may set, with defaults whose types the values must match.
FLAML_SETTINGS: dict[str, object] = {
    "time_budget": 60.0,
    "estimator_list": None,
    "metric": "auto",
    "max_iter": 1000000,
    "eval_method": "auto",
    "n_splits": 5,
    "split_ratio": 0.1,
    "early_stop": False,
    "sample": True,
    "seed": 1,
}
FLAML_METRIC = {"binary": "roc_auc", "multiclass": "macro_f1", "regression": "rmse"}
LIBRARY_OF_LEARNER = {"lgbm": "lightgbm", "xgboost": "xgboost", "xgb_limitdepth": "xgboost"}


def check_flaml_params(params: Mapping[str, ParamValue], unechoed: Collection[str] = ()) -> list[str]:
    """Validate FLAML settings (names, types, learners, budget) and return the learner list."""
    validate_hyperparameters(params, FLAML_SETTINGS, "flaml", unechoed)
    check_single_values(params, ("estimator_list",), "flaml", FLAML_SETTINGS)
    learners = params.get("estimator_list") or list(FLAML_LEARNERS[:5])
    if isinstance(learners, str):
        learners = [learners]
    unknown = [name for name in learners if name not in FLAML_LEARNERS]
    if unknown:
        shown = "unknown learners" if "estimator_list" in unechoed else unknown  # a param_file's values stay unsaid
        raise PipelineError(f"estimator_list holds {shown}; expected learners among {', '.join(FLAML_LEARNERS)}")
    if "time_budget" in params and not 1 <= float(params["time_budget"]) <= 24 * 3600:
        shown = "out of range" if "time_budget" in unechoed else f"{params['time_budget']} s"
        raise PipelineError(f"time_budget is {shown}; expected between 1 and 86400 seconds")
    return list(learners)


def flaml_settings(params: Mapping[str, ParamValue], time_budget: float, task: str, seed: int) -> dict[str, object]:
    """Validate user settings and fill in this project's defaults.

    Args:
        params: parsed `params` (e.g. ``time_budget=30;estimator_list=['lgbm']``).
        time_budget: the step's budget in seconds, used unless `params` sets one.
        task: "binary", "multiclass" or "regression".
        seed: the search's random seed, unless `params` sets one.

    Returns:
        Keyword arguments for `flaml.AutoML.fit` (without data and log file).
    """
    learners = check_flaml_params(params)
    budget = float(params.get("time_budget", time_budget))
    if not 1 <= budget <= 24 * 3600:
        raise PipelineError(f"time_budget is {budget:g} s; expected between 1 and 86400 seconds")
    settings = {
        "seed": seed,
        "metric": FLAML_METRIC[task],
        **{k: v for k, v in params.items() if k != "estimator_list"},
    }
    settings.update(
        time_budget=budget,
        estimator_list=list(learners),
        task="regression" if task == "regression" else "classification",
        retrain_full=True,
        verbose=0,
        # FLAML's own MLflow logging would save its whole AutoML object; this step logs what matters.
        mlflow_logging=False,
    )
    return settings


def flaml_automl_class():
    """`flaml.AutoML`, imported without starting a Spark JVM.

    FLAML 2.7's `flaml.automl.spark` imports `pyspark.pandas` at import time when pyspark is
    installed (it is, for `predict`), and reading a pandas-on-Spark option there starts a JVM that
    outlives a killed step. A `None` entry in `sys.modules` makes that one import fail, so FLAML
    takes its documented no-Spark path; its Spark estimators, which this project never uses, are
    then unavailable. Checked against FLAML 2.7.0 and pyspark 4.3.0 by `test_automl_flaml`.
    """
    import sys

    if "flaml" not in sys.modules and "pyspark.pandas" not in sys.modules:
        sys.modules["pyspark.pandas"] = None  # type: ignore[assignment]
        try:
            import flaml
        finally:
            del sys.modules["pyspark.pandas"]
    import flaml

    return flaml.AutoML


def run_search(features: np.ndarray, label: np.ndarray, settings: Mapping[str, object], log_file: Path):
    """Run FLAML's search; the returned AutoML holds the best estimator retrained on all rows."""
    import warnings

    automl = flaml_automl_class()()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        automl.fit(features, label, log_file_name=str(log_file), **dict(settings))
    if automl.model is None:
        raise PipelineError(
            f"FLAML found no model within time_budget={settings['time_budget']:g} s; expected a larger budget"
        )
    return automl


def trial_history(log_file: Path) -> pd.DataFrame:
    """One row per FLAML trial: learner, configuration, validation loss and times."""
    rows = []
    for line in log_file.read_text().splitlines():
        record = json.loads(line)
        if "record_id" not in record:
            continue
        rows.append(
            {
                "trial": record["record_id"],
                "learner": record.get("learner", ""),
                "validation_loss": record.get("validation_loss"),
                "trial_time_s": record.get("trial_time"),
                "wall_clock_time_s": record.get("wall_clock_time"),
                "config": json.dumps(record.get("config", {}), sort_keys=True, default=float),
            }
        )
    return pd.DataFrame(
        rows, columns=["trial", "learner", "validation_loss", "trial_time_s", "wall_clock_time_s", "config"]
    )


def assemble_pipeline(preprocessor, estimator, label_encoder, task: str):
    """Put the fitted preprocessor and FLAML's fitted best estimator into one servable pipeline."""
    from sklearn.pipeline import Pipeline

    from tabular_pipeline.serving.estimators import LabelEncodedClassifier

    model = estimator if task == "regression" else LabelEncodedClassifier.from_fitted(estimator, label_encoder)
    return Pipeline([("preprocess", preprocessor), ("model", model)])
