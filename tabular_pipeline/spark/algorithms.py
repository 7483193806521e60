"""The estimators the Spark engine trains, the hyperparameters each accepts, and the grid search.

- `xgboost`: `xgboost.spark` (shipped inside the xgboost package), one worker per cluster core.
- `lr`: `pyspark.ml` LogisticRegression, or LinearRegression (ridge) for regression.
- `svm`: `pyspark.ml` LinearSVC, binary tasks only.
- `lightgbm` needs SynapseML's JVM packages, which the package index does not have: refused.

Hyperparameters use each library's own names (Spark's camelCase for `lr` and `svm`) and pass the
same allowlist and type checks as the pandas engine.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.ml.evaluation import Evaluator

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.parameters.hyperparameters import validate_hyperparameters
from tabular_pipeline.spark.encoding import FEATURES, LABEL_CODE, WEIGHT
from tabular_pipeline.training.algorithms import BOOSTER_LEARNING_RATE, BOOSTER_TREES

VALIDATION = "__validation"
STOPPING_ROUNDS = 30
VALIDATION_FRACTION = 0.1
MIN_ROWS_FOR_STOPPING = 200
# Allowed hyperparameters and this project's defaults.
LINEAR_DEFAULTS = {
    "regParam": 0.01,
    "elasticNetParam": 0.0,
    "maxIter": 100,
    "tol": 1e-6,
    "fitIntercept": True,
    "standardization": True,
    "aggregationDepth": 2,
}
SVM_DEFAULTS = {name: LINEAR_DEFAULTS[name] for name in LINEAR_DEFAULTS if name != "elasticNetParam"}
XGBOOST_DEFAULTS = {
    "n_estimators": BOOSTER_TREES,
    "learning_rate": BOOSTER_LEARNING_RATE,
    "max_depth": 6,
    "min_child_weight": 1.0,
    "subsample": 1.0,
    "colsample_bytree": 1.0,
    "reg_alpha": 0.0,
    "reg_lambda": 1.0,
    "gamma": 0.0,
    "max_bin": 256,
    "max_leaves": 0,
    "max_delta_step": 0.0,
    "scale_pos_weight": 1.0,
}


def check_spark_algorithm(algorithm: str, task: str) -> None:
    """Refuse what the Spark engine cannot train, in one line."""
    if algorithm == "lightgbm":
        raise PipelineError(
            "LightGBM (the default algorithm) on Spark needs SynapseML's JVM packages, which this project cannot "
            "install from the package index; use -P algorithm=xgboost with -P engine=spark"
        )
    if algorithm == "svm" and task != "binary":
        raise PipelineError(
            f"svm on Spark (LinearSVC) trains binary tasks only, and this is a {task} task; "
            "use -P algorithm=lr or xgboost with -P engine=spark"
        )


def allowed_hyperparameters(algorithm: str) -> dict[str, object]:
    """The allowlist with its defaults for `algorithm` on Spark."""
    return {"xgboost": XGBOOST_DEFAULTS, "svm": SVM_DEFAULTS}.get(algorithm, LINEAR_DEFAULTS)


def check_spark_hyperparameters(params: Mapping[str, object], algorithm: str, task: str) -> None:
    """Algorithm and task first, then names and value types against the allowlist."""
    check_spark_algorithm(algorithm, task)
    validate_hyperparameters(params, allowed_hyperparameters(algorithm), f"{algorithm} on Spark")


def build_estimator(
    algorithm: str,
    task: str,
    params: Mapping[str, object],
    input_columns: list[str],
    seed: int,
    workers: int,
    weighted: bool,
    stopping: bool,
):
    """The untrained `pyspark.ml` estimator, reading `input_columns` and the label code.

    Args:
        algorithm: "xgboost", "lr" or "svm".
        task: the learning task.
        params: checked hyperparameters (fixed ones; a grid is applied by the search).
        input_columns: the feature columns (XGBoost) or the one assembled vector column.
        seed: the random seed.
        workers: XGBoost workers (the cluster's cores).
        weighted: whether the weight column exists.
        stopping: whether XGBoost stops early on the rows marked for validation.
    """
    regression = task == "regression"
    if algorithm == "xgboost":
        import numpy as np
        from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor

        cls = SparkXGBRegressor if regression else SparkXGBClassifier
        extra = {"validation_indicator_col": VALIDATION, "early_stopping_rounds": STOPPING_ROUNDS} if stopping else {}
        return cls(
            features_col=input_columns,
            label_col=LABEL_CODE,
            num_workers=max(1, workers),
            missing=np.nan,
            random_state=seed,
            tree_method="hist",
            verbose=False,
            **extra,
            **{**XGBOOST_DEFAULTS, **dict(params)},
        )
    from pyspark.ml.classification import LinearSVC, LogisticRegression
    from pyspark.ml.regression import LinearRegression

    settings = {**allowed_hyperparameters(algorithm), **dict(params)}
    common = {"featuresCol": FEATURES, "labelCol": LABEL_CODE, **settings}
    if weighted:
        common["weightCol"] = WEIGHT
    if algorithm == "svm":
        return LinearSVC(**common)
    if regression:
        return LinearRegression(**common)
    return LogisticRegression(family="auto", **common)


def param_grid(estimator, grid: Mapping[str, list]):
    """`ParamGridBuilder` maps for the estimator's parameters named in `grid`."""
    from pyspark.ml.tuning import ParamGridBuilder

    builder = ParamGridBuilder()
    for name, values in grid.items():
        builder = builder.addGrid(estimator.getParam(name), list(values))
    return builder.build()


def cv_evaluator(task: str):
    """The cross-validation score, as the pandas engine's: ROC AUC, macro F1, or RMSE."""
    from pyspark.ml.evaluation import BinaryClassificationEvaluator, RegressionEvaluator

    if task == "binary":
        return BinaryClassificationEvaluator(
            labelCol=LABEL_CODE, rawPredictionCol="rawPrediction", metricName="areaUnderROC"
        )
    if task == "regression":
        return RegressionEvaluator(labelCol=LABEL_CODE, predictionCol="prediction", metricName="rmse")
    return MacroF1Evaluator()


def macro_f1(confusion: Mapping[tuple[float, float], int]) -> float:
    """Macro-averaged F1 from (true code, predicted code) -> rows; a class never predicted and never
    present scores 0, as scikit-learn's `zero_division=0`."""
    classes = sorted({code for pair in confusion for code in pair})
    scores = []
    for code in classes:
        hit = confusion.get((code, code), 0)
        predicted = sum(rows for (_, guess), rows in confusion.items() if guess == code)
        actual = sum(rows for (truth, _), rows in confusion.items() if truth == code)
        scores.append(0.0 if predicted + actual == 0 else 2 * hit / (predicted + actual))
    return sum(scores) / len(scores) if scores else 0.0


class MacroF1Evaluator(Evaluator):
    """Macro F1 from a confusion count on the cluster (Spark's own F1 is weighted by class)."""

    def _evaluate(self, dataset):
        rows = dataset.groupBy(LABEL_CODE, "prediction").count().collect()
        return macro_f1({(row[0], row[1]): row[2] for row in rows})

    def isLargerBetter(self):  # noqa: N802 - pyspark's name
        return True
