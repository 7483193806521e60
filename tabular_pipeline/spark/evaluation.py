"""Scoring on the cluster, and the test metrics computed there with the pandas engine's names and
definitions; only the confusion counts and a few sums reach the driver."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from tabular_pipeline.spark.encoding import LABEL_CODE
from tabular_pipeline.spark.export import SvmCalibration

PROBABILITIES = "__probabilities"
log = logging.getLogger("evaluation")


@dataclass(frozen=True)
class ClusterModel:
    """The fitted Spark pipeline, plus the Platt fit of an SVM's margin."""

    pipeline_model: object
    task: str
    calibration: SvmCalibration | None = None

    def score(self, frame):
        """`frame` with `prediction` (a class code, or a value) and, for classifiers, an array of
        class probabilities in code order."""
        from pyspark.ml.functions import vector_to_array
        from pyspark.sql import functions as F

        scored = self.pipeline_model.transform(frame)
        if self.task == "regression":
            return scored
        if self.calibration is None:
            return scored.withColumn(PROBABILITIES, vector_to_array("probability"))
        margin = vector_to_array("rawPrediction")[1]
        positive = 1.0 / (1.0 + F.exp(-(F.lit(self.calibration.slope) * margin + F.lit(self.calibration.intercept))))
        return scored.withColumn(PROBABILITIES, F.array(1.0 - positive, positive)).withColumn(
            "prediction", (positive > 0.5).cast("double")
        )


def fit_svm_calibration(scored_train) -> SvmCalibration:
    """Platt scaling on the training margins: a one-feature logistic regression on the cluster."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.functions import vector_to_array

    margins = scored_train.select(LABEL_CODE, vector_to_array("rawPrediction")[1].alias("__margin"))
    assembled = VectorAssembler(inputCols=["__margin"], outputCol="__margin_vector").transform(margins)
    fitted = LogisticRegression(featuresCol="__margin_vector", labelCol=LABEL_CODE, regParam=0.0).fit(assembled)
    return SvmCalibration(slope=float(fitted.coefficients[0]), intercept=float(fitted.intercept))


def classification_scores(confusion: np.ndarray) -> dict[str, float]:
    """Accuracy and macro precision, recall and F1 from a confusion matrix (rows: truth), with
    scikit-learn's `zero_division=0` and its labels (those seen as truth or prediction)."""
    seen = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
    matrix = confusion[np.ix_(seen, seen)]
    hits, predicted, actual = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / np.maximum(predicted, 1), 0.0)
        recall = np.where(actual > 0, hits / np.maximum(actual, 1), 0.0)
        f1 = np.where(predicted + actual > 0, 2 * hits / np.maximum(predicted + actual, 1), 0.0)
    return {
        "test_accuracy": float(hits.sum() / matrix.sum()),
        "test_f1_macro": float(f1.mean()),
        "test_precision_macro": float(precision.mean()),
        "test_recall_macro": float(recall.mean()),
    }


def cluster_metrics(scored, task: str, class_count: int) -> dict[str, float]:
    """The pandas engine's test metrics (`evaluation.metrics`), computed on the cluster.

    One aggregation gives the confusion counts and the log loss's sum (or, for regression, every
    sum); ROC AUC needs one sorted pass per class (one for binary). Persist `scored` first: each
    pass then reads it from memory instead of scoring the split again.
    """
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.sql import functions as F

    label, prediction = F.col(LABEL_CODE), F.col("prediction")
    if task == "regression":
        sums = scored.agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum((prediction - label) ** 2).alias("squared"),
            F.sum(F.abs(prediction - label)).alias("absolute"),
            F.var_pop(label).alias("variance"),
        ).first()
        rows = sums["rows"]
        total = sums["variance"] * rows
        return {
            "test_rmse": float(np.sqrt(sums["squared"] / rows)),
            "test_mae": float(sums["absolute"] / rows),
            "test_r2": float(1 - sums["squared"] / total) if total > 0 else float("nan"),
        }
    probability = F.col(PROBABILITIES)
    eps = np.finfo(float).eps
    true_probability = F.element_at(probability, label.cast("int") + 1)
    clipped = F.least(F.greatest(true_probability, F.lit(eps)), F.lit(1 - eps))
    confusion, log_loss_sum = np.zeros((class_count, class_count)), 0.0
    cells = scored.groupBy(LABEL_CODE, "prediction").agg(F.count(F.lit(1)), F.sum(-F.log(clipped))).collect()
    for truth, predicted, count, losses in cells:
        confusion[int(truth), int(predicted)] = count
        log_loss_sum += losses or 0.0
    metrics = classification_scores(confusion)
    if (confusion.sum(axis=1) > 0).all():
        areas = []
        for code in range(class_count) if class_count > 2 else [1]:
            pairs = scored.select(
                probability[code].alias("__score"), (label == float(code)).cast("double").alias("__is_class")
            )
            evaluator = BinaryClassificationEvaluator(rawPredictionCol="__score", labelCol="__is_class", numBins=0)
            areas.append(evaluator.evaluate(pairs))
        metrics["test_roc_auc"] = float(np.mean(areas))
        metrics["test_log_loss"] = float(log_loss_sum / confusion.sum())
    return metrics
