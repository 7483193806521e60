"""The model's performance on a scored table, from counts both engines make alike.

Realized (the table holds the label): the test metrics of training, under their names, from the
confusion counts (accuracy, macro F1, precision and recall through `evaluation.metrics`), from
the labelled rows and rows of each scored class per distinct probability (ROC AUC, exact: tied
scores count half, as in scikit-learn) and from a sum of log losses; for regression from sums of
errors (RMSE, MAE, R²).

Estimated (CBPE, for classifiers): each row's class probabilities are replaced by the calibrated
ones of its score bins (normalised to sum to one), and the expected confusion counts are their sums
by predicted class; expected accuracy and macro F1 follow, and the expected ROC AUC from the
expected positives and negatives per bin. It assumes the relation between features and label
(P(y|x)) is the one the test split showed; a change in that relation (concept shift) is invisible
to it, and only realized figures reveal it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tabular_pipeline.evaluation.metrics import classification_metrics
from tabular_pipeline.monitoring.profile import label_text
from tabular_pipeline.monitoring.thresholds import has_dropped

# A figure from fewer rows than this is reported but not judged (an AUC on 20 rows is noise).
MIN_ROWS_TO_JUDGE = 100
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)  # scikit-learn's clipping of probabilities
UNKNOWN = -1  # a label value the model never learnt


@dataclass
class ScoreCounts:
    """Labelled rows, and rows of one class, per distinct score of that class: what an exact ROC
    AUC needs, in a form that adds up over batches (at most three numbers per labelled row).

    Each batch is reduced to its distinct scores and set aside; the parts are merged when they
    outgrow what is merged already, so the sorting stays O(n log n) over the whole table."""

    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labeled: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(self, values, labeled, hits) -> None:
        """Count rows by score value (a value may repeat)."""
        self.pending.append(_merged([(np.asarray(values, dtype=float), np.asarray(labeled), np.asarray(hits))]))
        if sum(len(part[0]) for part in self.pending) >= max(len(self.values), 100_000):
            self.merge()

    def merge(self) -> None:
        """Fold the parts set aside into the sorted counts."""
        if self.pending:
            parts = [(self.values, self.labeled, self.hits), *self.pending]
            self.values, self.labeled, self.hits = _merged(parts)
            self.pending = []

    def auc(self) -> float | None:
        """ROC AUC of this class against the rest, exact: P(a row of the class scores above one
        that is not), ties counting half. None when either side is empty."""
        self.merge()
        return binned_auc(self.hits, self.labeled - self.hits)


def _merged(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts per distinct value, sorted by value, of parts that may share values."""
    values = np.concatenate([part[0] for part in parts])
    distinct, where = np.unique(values, return_inverse=True)
    labeled = np.bincount(where, np.concatenate([part[1] for part in parts]), len(distinct)).astype(np.int64)
    hits = np.bincount(where, np.concatenate([part[2] for part in parts]), len(distinct)).astype(np.int64)
    return distinct, labeled, hits


@dataclass
class PerformanceCounts:
    """What was counted so far; every field is a count or a sum, so batches and Spark partitions add up."""

    rows: int = 0
    labeled: int = 0
    confusion: np.ndarray | None = None  # [label (last row: unknown values), prediction] counts
    log_loss_sum: float = 0.0
    expected: np.ndarray | None = None  # [class, prediction]: calibrated probabilities summed
    bin_rows: list[np.ndarray] = field(default_factory=list)  # per scored class: rows per calibration bin
    score_counts: list[ScoreCounts] = field(default_factory=list)  # per scored class: labelled rows per score
    ranked_aucs: list[float | None] | None = None  # per scored class, when Spark computed them on the cluster
    error_sums: np.ndarray | None = None  # regression: squared, absolute, label - centre, its square


class PerformanceCounter:
    """Counts scored batches for the figures of one model's performance section."""

    def __init__(self, section: dict):
        self.section = section
        self.task = section["task"]
        self.classes = section.get("classes", [])
        self.scores = section.get("scores", [])
        self.counts = PerformanceCounts()
        k, bins = len(self.classes), [len(score["edges"]) + 1 for score in self.scores]
        if self.task == "regression":
            self.counts.error_sums = np.zeros(4)
        else:
            self.counts.confusion = np.zeros((k + 1, k), dtype=np.int64)
            self.counts.expected = np.zeros((k, k))
            self.counts.bin_rows = [np.zeros(size, dtype=np.int64) for size in bins]
            self.counts.score_counts = [ScoreCounts() for _ in self.scores]

    @property
    def estimates_auc(self) -> bool:
        """A binary classifier's ROC AUC is estimated from its rows per bin (multiclass: macro F1, from sums)."""
        return len(self.classes) == 2 and bool(self.scores)

    @property
    def label_column(self) -> str:
        return self.section["label_column"]

    @property
    def probability_columns(self) -> list[str]:
        """The answer's probability columns; empty when the model is not asked for probabilities."""
        return self.section.get("probability_columns", []) if self.scores else []

    def calibrated(self, probabilities: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Each scored class's bin per row, and every class's calibrated probability per row."""
        bins = [
            np.searchsorted(np.asarray(s["edges"], dtype=float), probabilities[:, s["class"]], side="right")
            for s in self.scores
        ]
        if len(self.classes) == 2:
            positive = np.asarray(self.scores[0]["calibration"])[bins[0]]
            return bins, np.column_stack([1 - positive, positive])
        calibrated = np.column_stack([np.asarray(s["calibration"])[b] for s, b in zip(self.scores, bins, strict=True)])
        total = calibrated.sum(axis=1, keepdims=True)
        uniform = np.full_like(calibrated, 1 / len(self.classes))
        return bins, np.divide(calibrated, total, out=uniform, where=total > 0)

    def add(self, labels, predictions, probabilities: np.ndarray | None) -> None:
        """Count one batch: the label column's values (None when the table has none), the model's
        predictions and, for a classifier, its probabilities in `probability_columns` order."""
        counts, n = self.counts, len(predictions)
        counts.rows += n
        if self.task == "regression":
            if labels is not None:
                truth = pd.to_numeric(pd.Series(labels), errors="coerce").to_numpy(dtype=float)
                known = ~np.isnan(truth)
                error = truth[known] - np.asarray(predictions, dtype=float)[known]
                centred = truth[known] - self.section["label_center"]
                counts.labeled += int(known.sum())
                counts.error_sums += [np.sum(error**2), np.sum(np.abs(error)), centred.sum(), np.sum(centred**2)]
            return
        k = len(self.classes)
        predicted = class_codes(label_text(predictions), self.classes)
        bins, calibrated = self.calibrated(probabilities) if self.scores else ([], None)
        if calibrated is not None:
            for cls in range(k):
                counts.expected[:, cls] += calibrated[predicted == cls].sum(axis=0)
            if self.estimates_auc:
                counts.bin_rows[0] += np.bincount(bins[0], minlength=len(counts.bin_rows[0]))
        if labels is None:
            return
        text = label_text(labels)
        truth = class_codes(text, self.classes)
        present = text.notna().to_numpy()
        counts.labeled += int(present.sum())
        answered = present & (predicted != UNKNOWN)  # a model answers with its own classes; anything else is not a cell
        np.add.at(counts.confusion, (np.where(truth == UNKNOWN, k, truth)[answered], predicted[answered]), 1)
        known = present & (truth != UNKNOWN)
        if probabilities is not None and known.any():
            chosen = probabilities[np.flatnonzero(known), truth[known]]
            counts.log_loss_sum += float(-np.log(np.clip(chosen, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)).sum())
        for score, score_counts in zip(self.scores, counts.score_counts, strict=True):
            hits = (truth[present] == score["class"]).astype(np.int64)
            score_counts.add(probabilities[present, score["class"]], np.ones(len(hits), dtype=np.int64), hits)

    def realized(self) -> dict[str, float]:
        """The test metrics on the labelled rows (empty without any)."""
        return realized_metrics(self.counts, self.section)

    def estimated(self) -> dict[str, float]:
        """The primary metric and accuracy, estimated from calibrated probabilities (classifiers only)."""
        return estimated_metrics(self.counts, self.section)


def class_codes(text: pd.Series, classes: list[str]) -> np.ndarray:
    """Each value's class index, from its `label_text` (`UNKNOWN` for a value the model never
    learnt, or a missing one)."""
    return pd.Categorical(text, categories=classes).codes.astype(np.int64)


def binned_auc(positives: np.ndarray, negatives: np.ndarray) -> float | None:
    """ROC AUC of rows known by their group, groups in score order (distinct scores: exact; score
    bins: CBPE's estimate): P(a positive's group is above a negative's), ties counting half. None
    when either side is empty."""
    positives, negatives = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    if positives.sum() <= 0 or negatives.sum() <= 0:
        return None
    below = np.cumsum(negatives) - negatives
    return float(np.sum(positives * (below + negatives / 2)) / (positives.sum() * negatives.sum()))


def cell_metrics(cells: np.ndarray, classes: list[str], truth_labels: list[str]) -> dict[str, float]:
    """Accuracy and macro F1/precision/recall of a [truth, prediction] table of (expected) counts,
    by `evaluation.metrics`, as if on the rows themselves (empty cells are left out, as classes
    that occur in neither column are left out on rows)."""
    truth, predicted = np.nonzero(cells > 0)
    if not truth.size:
        return {}
    labels = np.asarray(truth_labels, dtype=object)
    return classification_metrics(
        labels[truth], np.asarray(classes, dtype=object)[predicted], None, np.asarray(classes), cells[truth, predicted]
    )


def realized_metrics(counts: PerformanceCounts, section: dict) -> dict[str, float]:
    """The test metrics of training, by name, from the counts of the labelled rows."""
    if not counts.labeled:
        return {}
    if section["task"] == "regression":
        squared, absolute, centred, centred_squared = counts.error_sums
        total = centred_squared - centred**2 / counts.labeled
        r2 = 1 - squared / total if total > 0 else (1.0 if squared == 0 else 0.0)
        return {
            "test_rmse": float(np.sqrt(squared / counts.labeled)),
            "test_mae": float(absolute / counts.labeled),
            "test_r2": float(r2),
        }
    classes = section["classes"]
    metrics = cell_metrics(counts.confusion, classes, [*classes, "(a label the model never learnt)"])
    known = counts.confusion[: len(classes)].sum(axis=1)
    if counts.score_counts and counts.confusion[-1].sum() == 0 and (known > 0).sum() > 1:
        aucs = counts.ranked_aucs or [score_counts.auc() for score_counts in counts.score_counts]
        if all(auc is not None for auc in aucs):  # one-vs-rest over every class, as in training
            metrics["test_roc_auc"] = float(np.mean(aucs))
        metrics["test_log_loss"] = counts.log_loss_sum / counts.labeled
    return metrics


def estimated_metrics(counts: PerformanceCounts, section: dict) -> dict[str, float]:
    """Accuracy and the primary metric, from the expected confusion counts and rows per bin (CBPE)."""
    if section["task"] == "regression" or not section.get("scores") or not counts.rows:
        return {}
    metrics = cell_metrics(counts.expected, section["classes"], section["classes"])
    if not metrics:
        return {}
    estimated = {"test_accuracy": metrics["test_accuracy"]}
    if section["primary_metric"] == "test_roc_auc" and len(section["scores"]) == 1:
        [score] = section["scores"]
        rows, calibration = counts.bin_rows[0].astype(float), np.asarray(score["calibration"])
        auc = binned_auc(rows * calibration, rows * (1 - calibration))
        if auc is not None:
            estimated["test_roc_auc"] = auc
    else:
        estimated[section["primary_metric"]] = metrics[section["primary_metric"]]
    return estimated


@dataclass(frozen=True)
class PerformanceFigures:
    """Realized and estimated figures beside the recorded test metrics, and what they say."""

    primary: str
    greater_is_better: bool
    recorded: dict[str, float]
    realized: dict[str, float]
    estimated: dict[str, float]
    rows: int
    labeled: int
    degraded: list[str]  # "realized" and/or "estimated": whose primary metric dropped beyond `drop`
    unjudged: list[str]  # figures from fewer than MIN_ROWS_TO_JUDGE rows: shown, not judged


def performance_figures(counter: PerformanceCounter, drop: float) -> PerformanceFigures:
    """The figures of a counted table, each primary metric judged against the recorded one."""
    section, counts = counter.section, counter.counts
    primary, recorded = section["primary_metric"], section["test_metrics"]
    found = {"realized": (counter.realized(), counts.labeled), "estimated": (counter.estimated(), counts.rows)}
    degraded, unjudged = [], []
    for kind, (figures, rows) in found.items():
        if primary not in figures or primary not in recorded:
            continue
        if rows < MIN_ROWS_TO_JUDGE:
            unjudged.append(kind)
        elif has_dropped(recorded[primary], figures[primary], section["greater_is_better"], drop):
            degraded.append(kind)
    return PerformanceFigures(
        primary,
        section["greater_is_better"],
        recorded,
        found["realized"][0],
        found["estimated"][0],
        counts.rows,
        counts.labeled,
        degraded,
        unjudged,
    )
