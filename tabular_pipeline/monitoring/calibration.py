"""The performance section of a model's monitoring profile, built at training time from the model's
answer on the test split: what `predict` needs to compute the test metrics on a labelled table
(realized) and to estimate them on an unlabelled one (CBPE, confidence-based performance estimation).

For a classifier, each scored class (the positive class of a binary task, every class otherwise)
gets score bins cut at the test split's quantiles of its probability (plus 0.5, the binary
decision, so no bin straddles it), and a calibration: the share of the bin's test rows that hold
that class, made monotone by isotonic regression. `predict` counts every table on those bins, so
both engines count the same cells and the figures follow from the counts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabular_pipeline.evaluation.metrics import GREATER_IS_BETTER, PRIMARY_METRIC, unpack_served_output
from tabular_pipeline.monitoring.profile import label_text

# The test rows the calibration is fitted on: the whole split up to this size, else a seeded sample.
CALIBRATION_ROWS = 50_000
# Score bins of a binary task's positive class; a multiclass task shares them out among its classes
# (at least MIN_CLASS_BINS each), so the counts Spark makes in the scoring pass stay few.
SCORE_BINS = 40
MIN_CLASS_BINS = 10


def score_edges(scores: np.ndarray, bins: int, binary: bool) -> list[float]:
    """Inner bin edges at the quantiles of `scores` (fewer where scores repeat), with 0.5 for a binary task."""
    edges = np.quantile(scores, np.arange(1, bins) / bins) if len(scores) else np.array([])
    return sorted({float(edge) for edge in edges} | ({0.5} if binary else set()))


def calibrate(scores: np.ndarray, is_class: np.ndarray, edges: list[float]) -> list[float]:
    """P(the class | the score's bin) on the test rows, non-decreasing across bins (isotonic
    regression weighted by the bins' rows; a bin without test rows takes its neighbours' value)."""
    from sklearn.isotonic import IsotonicRegression

    bins = np.searchsorted(np.asarray(edges, dtype=float), scores, side="right")
    rows = np.bincount(bins, minlength=len(edges) + 1).astype(float)
    hits = np.bincount(bins, weights=is_class.astype(float), minlength=len(edges) + 1)
    filled = np.flatnonzero(rows)
    if not filled.size:
        return [0.0] * (len(edges) + 1)
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    isotonic.fit(filled, hits[filled] / rows[filled], sample_weight=rows[filled])
    return [float(value) for value in isotonic.predict(np.arange(len(edges) + 1))]


def performance_profile(output, label: pd.Series, task: str, label_column: str, test_metrics: dict[str, float]) -> dict:
    """The performance section, from the model's answer on (a sample of) the test split.

    Args:
        output: the model's answer: values, labels, or a frame with `prediction` and
            `probability_<class>` columns (as `evaluation.metrics.unpack_served_output` reads it).
        label: the true labels of the same rows.
        task: "binary", "multiclass" or "regression".
        label_column: the label's column name, which `predict` looks for in a scored table.
        test_metrics: the metrics the training run recorded on the whole test split.

    Returns:
        A JSON-ready dict; classifiers with probabilities also get `classes`, `probability_columns`
        and `scores` (per scored class: its index, bin edges and calibration).
    """
    section = {
        "task": task,
        "label_column": label_column,
        "primary_metric": PRIMARY_METRIC[task],
        "greater_is_better": GREATER_IS_BETTER[task],
        "test_metrics": {name: float(value) for name, value in test_metrics.items()},
        "calibration_rows": int(len(label)),
    }
    if task == "regression":
        # Sums of labels are taken around this centre, so the R² of a large-valued label stays exact.
        return {**section, "label_center": float(pd.to_numeric(label, errors="coerce").mean())}
    _, probabilities, classes = unpack_served_output(output, label, task)
    if probabilities is None:
        return section
    classes_text = label_text(classes).tolist()
    truth = label_text(label).to_numpy(dtype=object)
    binary = len(classes_text) == 2
    scored = [1] if binary else list(range(len(classes_text)))
    bins = SCORE_BINS if binary else max(MIN_CLASS_BINS, SCORE_BINS // len(classes_text))
    scores = []
    for index in scored:
        values = np.asarray(probabilities[:, index], dtype=float)
        edges = score_edges(values, bins, binary)
        scores.append(
            {"class": index, "edges": edges, "calibration": calibrate(values, truth == classes_text[index], edges)}
        )
    columns = [f"probability_{value}" for value in classes]
    if isinstance(output, pd.DataFrame):
        columns = [str(name) for name in output.columns if str(name).startswith("probability_")]
    return {**section, "classes": classes_text, "probability_columns": columns, "scores": scores}


def model_performance_profile(
    model,
    test: pd.DataFrame,
    label_column: str,
    task: str,
    test_metrics: dict[str, float],
    seed: int,
    answer=None,
) -> dict:
    """The performance section of a model fitted in this process (a scikit-learn pipeline or
    AutoGluon's view of its predictor), answering on at most `CALIBRATION_ROWS` test rows.

    `answer`, the model's answer on the whole of `test` row for row (`evaluation.report.model_answer`,
    which the evaluation computed already), is used instead of asking the model again."""
    from tabular_pipeline.serving.model import probability_frame

    # The same rows as `test.sample(CALIBRATION_ROWS, random_state=seed)`, by position.
    positions = np.arange(len(test))
    if len(test) > CALIBRATION_ROWS:
        positions = pd.Series(positions).sample(CALIBRATION_ROWS, random_state=seed).to_numpy()
    if answer is not None and len(answer) != len(test):
        raise ValueError(f"the answer has {len(answer)} rows and the test split {len(test)}; expected one per row")
    rows = test.iloc[positions]
    features, label = rows.drop(columns=[label_column]), rows[label_column]
    if task == "regression":
        output = None
    elif answer is not None:
        output = answer.iloc[positions].reset_index(drop=True) if isinstance(answer, pd.DataFrame) else (
            np.asarray(answer)[positions])  # fmt: skip
    elif hasattr(model, "probability_frame"):  # AutoGluon's view answers labels and probabilities itself
        output = model.probability_frame(features)
    elif hasattr(model, "predict_proba"):
        output = probability_frame(model, features)
    else:
        output = model.predict(features)
    return performance_profile(output, label, task, label_column, test_metrics)
