"""Fitting on the cluster: screening, weights, the `pyspark.ml` pipeline or its grid search, the
SVM's calibration, and the export to scikit-learn. Nothing here talks to MLflow."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.spark.encoding import FeatureColumns

log = logging.getLogger("train_basic")


@dataclass(frozen=True)
class SearchResult:
    """A grid search's table (one row per candidate, `mean_test_score` as the pandas engine
    reports it: higher is better) and the best candidate's settings."""

    table: pd.DataFrame
    best: dict
    best_score: float


@dataclass(frozen=True)
class SparkFit:
    """A model fitted on the cluster, its scikit-learn export, and what was decided on the way."""

    cluster_model: object
    exported: object
    columns: FeatureColumns
    dropped: dict[str, str]
    classes: list
    settings: dict
    train_rows: int
    workers: int
    search: SearchResult | None = None
    weights: dict = field(default_factory=dict)


def prepare(frame, label_column: str, columns: FeatureColumns, classes: list, weights: dict | None, stop_seed=None):
    """Kept columns, label code, weights, "<missing>" categories and, when XGBoost stops early, the
    seeded validation marker."""
    from pyspark.sql import functions as F

    from tabular_pipeline.spark.algorithms import VALIDATION, VALIDATION_FRACTION
    from tabular_pipeline.spark.encoding import categories_as_text, with_label_and_weight

    kept = [F.col(f"`{name}`") for name in [label_column, *columns.numeric, *columns.categorical]]
    prepared = with_label_and_weight(categories_as_text(frame.select(*kept), columns), label_column, classes, weights)
    if stop_seed is not None:
        prepared = prepared.withColumn(VALIDATION, F.rand(stop_seed) < VALIDATION_FRACTION)
    return prepared


def grid_search(pipeline, estimator, grid: Mapping[str, list], prepared, task: str, folds: int, seed: int):
    """Cross-validate every grid candidate with `pyspark.ml.tuning`; returns the best model and the table."""
    from pyspark.ml.tuning import CrossValidator

    from tabular_pipeline.spark.algorithms import cv_evaluator, param_grid
    from tabular_pipeline.training.search import MAX_GRID_CANDIDATES

    maps = param_grid(estimator, grid)
    if len(maps) > MAX_GRID_CANDIDATES:
        raise PipelineError(
            f"search_params makes {len(maps)} candidates; expected at most {MAX_GRID_CANDIDATES} on Spark "
            "(the grid is searched in full)"
        )
    log.info("searching %d candidates with %d-fold cross-validation on the cluster", len(maps), folds)
    search = CrossValidator(
        estimator=pipeline, estimatorParamMaps=maps, evaluator=cv_evaluator(task), numFolds=folds, seed=seed
    ).fit(prepared)
    sign = -1.0 if task == "regression" else 1.0  # the pandas engine reports the negated RMSE
    table = pd.DataFrame([{param.name: value for param, value in m.items()} for m in maps])
    table["mean_test_score"] = [sign * score for score in search.avgMetrics]
    best = int(table["mean_test_score"].idxmax())
    settings = {param.name: value for param, value in maps[best].items()}
    return search.bestModel, SearchResult(table, settings, float(table["mean_test_score"][best]))


def class_weighting(algorithm: str, task: str, counts: dict) -> tuple[dict | None, dict]:
    """The pandas engine's imbalance rule: balanced row weights for linear models and SVMs, XGBoost's
    `scale_pos_weight` on binary tasks, nothing otherwise. Returns (row weights, estimator defaults)."""
    from tabular_pipeline.spark.encoding import balanced_weights, is_imbalanced

    if not counts or not is_imbalanced(counts):
        return None, {}
    if algorithm != "xgboost":
        return balanced_weights(counts), {}
    if task == "binary":
        negative, positive = list(counts.values())
        return None, {"scale_pos_weight": negative / positive}
    return None, {}


def fit_on_cluster(
    spark, train, label_column: str, algorithm: str, task: str, fixed: dict, grid: dict, seed: int, folds: int
) -> SparkFit:
    """Screen, weight, fit (or search) and export; the caller logs what it returns.

    Args:
        spark: the session.
        train: the training split on the cluster (harmonised columns, label included).
        label_column: the target column.
        algorithm: "xgboost", "lr" or "svm" (checked with `check_spark_hyperparameters`).
        task: the learning task.
        fixed: fixed hyperparameters; `grid`: the search space (may be empty).
        seed: the random seed; `folds`: cross-validation folds for a search.
    """
    from pyspark.ml import Pipeline

    from tabular_pipeline.spark.algorithms import MIN_ROWS_FOR_STOPPING, build_estimator
    from tabular_pipeline.spark.encoding import class_counts, encoding_stages, screen_frame
    from tabular_pipeline.spark.evaluation import ClusterModel, fit_svm_calibration
    from tabular_pipeline.spark.export import export_pipeline, trained_encoding

    columns, dropped = screen_frame(train, label_column)
    counts = class_counts(train, label_column) if task != "regression" else {}
    classes = list(counts)
    weights, defaults = class_weighting(algorithm, task, counts)
    rows = train.count()
    stopping = algorithm == "xgboost" and rows >= MIN_ROWS_FOR_STOPPING
    workers = spark.sparkContext.defaultParallelism
    prepared = prepare(train, label_column, columns, classes, weights, seed + 1 if stopping else None)
    stages, inputs = encoding_stages(columns, linear=algorithm != "xgboost")
    settings = {**defaults, **fixed}
    estimator = build_estimator(algorithm, task, settings, inputs, seed, workers, weights is not None, stopping)
    pipeline = Pipeline(stages=[*stages, estimator])
    log.info("fitting %s on %d rows on the cluster (%d workers)", algorithm, rows, workers)
    search = None
    if grid:
        model, search = grid_search(pipeline, estimator, grid, prepared, task, folds, seed)
    else:
        model = pipeline.fit(prepared)
    calibration = fit_svm_calibration(model.transform(prepared)) if algorithm == "svm" else None
    exported = export_pipeline(
        algorithm, task, trained_encoding(model, columns), model.stages[-1], classes, calibration
    )
    return SparkFit(
        ClusterModel(model, task, calibration),
        exported,
        columns,
        dropped,
        classes,
        {**settings, **(search.best if search else {})},
        rows,
        workers,
        search,
        weights or {},
    )
