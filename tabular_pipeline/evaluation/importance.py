"""Permutation importance of the raw columns, the same for every algorithm, AutoML included.

scikit-learn's `permutation_importance` calls the model once per column and shuffle, and each call
pays the pipeline's fixed cost again. This module makes the same shuffles (same seed, same order;
`tests/test_modeling.py` compares the two) and predicts them stacked, a few calls in all, scoring
with the metric functions behind the three scorers `scoring_for_task` names. The saving is modest
where the model's own prediction dominates: about 4.1 s to 3.5 s for a LightGBM model on 20
columns and 1,851 rows (about 100,000 rows predicted, one thread; measured at 5a7aaf2). We keep our
own code rather than scikit-learn's for that and for a clear error on a one-class sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Permutation importance predicts rows x (1 + repeats x columns) rows, so its cost grows with the
# table's width: the sample is sized to a budget of predicted rows, between a floor and a ceiling.
# (2,000 rows and 5 repeats for every width took 8 to 18 s of a 300k-row, 30-column `train_basic`.)
IMPORTANCE_PREDICTED_ROWS = 100_000
IMPORTANCE_MIN_ROWS = 500
IMPORTANCE_MAX_ROWS = 2000
IMPORTANCE_REPEATS = 3
# Shuffled copies are stacked into calls of about this many raw cells (10,000 rows of 20 columns):
# few calls, and memory that does not grow with the width (a linear model one-hot encodes text
# densely: 40 text columns take about 300 MB per 10,000 rows). A copy wider than this goes alone,
# as scikit-learn's calls do.
CELLS_PER_CALL = 200_000


def importance_rows(test_rows: int, columns: int) -> int:
    """How many test rows permutation importance shuffles: the budget of predicted rows shared by
    `IMPORTANCE_REPEATS` passes over every column, kept between the floor and the ceiling, and never
    more than the test split holds."""
    budget = IMPORTANCE_PREDICTED_ROWS // (IMPORTANCE_REPEATS * max(1, columns))
    return min(test_rows, max(IMPORTANCE_MIN_ROWS, min(IMPORTANCE_MAX_ROWS, budget)))


@dataclass(frozen=True)
class Scorer:
    """A scorer split in two: the model's method to call on the stacked rows, and the metric on one
    copy's answers (higher is better), as `metric(truth, answers, classes)`."""

    method: str
    metric: Callable[[pd.Series, np.ndarray, np.ndarray | None], float]


def _roc_auc(truth: pd.Series, answers: np.ndarray, classes: np.ndarray | None) -> float:
    from sklearn.metrics import roc_auc_score

    # scikit-learn warns and scores NaN here; a table of NaN drops is no importance.
    if truth.nunique() < 2:
        raise ValueError(f"ROC AUC needs both classes, and the {len(truth)} sampled test rows hold one")
    return float(roc_auc_score(truth == classes[1], answers[:, 1]))


def _f1_macro(truth: pd.Series, answers: np.ndarray, _classes: np.ndarray | None) -> float:
    from sklearn.metrics import f1_score

    # zero_division=0 scores what the "warn" default scores, without a warning per shuffle.
    return float(f1_score(truth, answers, average="macro", zero_division=0))


def _neg_rmse(truth: pd.Series, answers: np.ndarray, _classes: np.ndarray | None) -> float:
    from sklearn.metrics import root_mean_squared_error

    return -float(root_mean_squared_error(truth, answers))


# The scorers `evaluation.metrics.scoring_for_task` names. ROC AUC reads the probability of
# `classes_[1]`, as scikit-learn's scorer does for a model without `decision_function`.
SCORERS = {
    "roc_auc": Scorer("predict_proba", _roc_auc),
    "f1_macro": Scorer("predict", _f1_macro),
    "neg_root_mean_squared_error": Scorer("predict", _neg_rmse),
}


def shuffled_orders(rows: int, columns: int, repeats: int, seed: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Each column shuffled `repeats` times, as scikit-learn's `permutation_importance` shuffles it:
    one seed drawn from `seed`, a fresh generator per column, each shuffle applied to the last.
    Yields (column position, repeat, the row positions the shuffled column takes its values from)."""
    from sklearn.utils import check_random_state

    column_seed = check_random_state(seed).randint(np.iinfo(np.int32).max + 1)
    for position in range(columns):
        generator = check_random_state(column_seed)
        order, taken = np.arange(rows), np.arange(rows)
        for repeat in range(repeats):
            generator.shuffle(order)
            taken = taken[order]
            yield position, repeat, taken


class StackedCopies:
    """The sample `copies` times, one copy under the other, built once. Each batch shuffles one
    column in each copy's block, and the next batch first puts those columns back, so a batch
    costs the columns it touches rather than a copy of the whole sample per shuffle (that grew with
    the square of the width). As scikit-learn's own frame is, the frame a model is given changes
    after it returns."""

    # Every replaced column becomes a block of its own; past this many replacements the frame is
    # copied whole, which joins them again (a frame of hundreds of blocks slowed every predict).
    REPLACEMENTS_PER_COPY = 16

    def __init__(self, sample: pd.DataFrame, copies: int):
        self.sample, self.rows = sample, len(sample)
        self.unshuffled = np.tile(np.arange(self.rows), copies)
        self.stacked = sample.take(self.unshuffled).reset_index(drop=True)
        self.touched: list[int] = []
        self.replaced = 0

    def _set_column(self, position: int, taken: np.ndarray) -> None:
        self.stacked.isetitem(position, self.sample.iloc[:, position].take(taken).reset_index(drop=True))
        self.replaced += 1

    def with_shuffles(self, batch: list[tuple[int, int, np.ndarray]]) -> pd.DataFrame:
        """The first `len(batch)` copies, copy i with column `batch[i][0]` taken in `batch[i][2]`'s order."""
        for position in self.touched:
            self._set_column(position, self.unshuffled)
        by_column: dict[int, list[tuple[int, np.ndarray]]] = {}
        for index, (position, _, order) in enumerate(batch):
            by_column.setdefault(position, []).append((index, order))
        for position, blocks in by_column.items():
            taken = self.unshuffled.copy()
            for index, order in blocks:
                taken[index * self.rows : (index + 1) * self.rows] = order
            self._set_column(position, taken)
        self.touched = list(by_column)
        if self.replaced > self.REPLACEMENTS_PER_COPY:
            self.stacked, self.replaced = self.stacked.copy(), 0
        used = len(batch) * self.rows
        return self.stacked if used == len(self.stacked) else self.stacked.iloc[:used]


def permutation_importance_table(
    model, features: pd.DataFrame, label: pd.Series, scoring: str, seed: int
) -> pd.DataFrame:
    """Mean and std drop in `scoring` when each raw column is shuffled, largest first.

    Args:
        model: a fitted pipeline that takes raw columns.
        features: test rows (a seeded sample of `importance_rows` of them is used).
        label: their true labels, row for row (matched by position, not index).
        scoring: "roc_auc", "f1_macro" or "neg_root_mean_squared_error".
        seed: the shuffling seed.

    Returns:
        Columns `feature`, `importance_mean`, `importance_std`.

    Raises:
        ValueError: when the score cannot be computed (ROC AUC on rows of one class).
    """
    scorer = SCORERS[scoring]
    predict = getattr(model, scorer.method)
    classes = getattr(model, "classes_", None)
    rows = importance_rows(len(features), features.shape[1])
    # The rows `features.sample(n=rows, random_state=seed)` picks, by position: an index with
    # repeated labels would pick more than `rows` labels.
    picked = pd.Series(np.arange(len(features))).sample(n=rows, random_state=seed).to_numpy()
    sample, truth = features.iloc[picked], label.iloc[picked]
    baseline = scorer.metric(truth, np.asarray(predict(sample)), classes)
    drops = np.full((sample.shape[1], IMPORTANCE_REPEATS), np.nan)
    copies = sample.shape[1] * IMPORTANCE_REPEATS
    stacked = StackedCopies(sample, min(copies, max(1, CELLS_PER_CALL // max(1, sample.size))))
    batch: list[tuple[int, int, np.ndarray]] = []
    for count, copy in enumerate(shuffled_orders(rows, sample.shape[1], IMPORTANCE_REPEATS, seed), start=1):
        batch.append(copy)
        if len(batch) * rows == len(stacked.unshuffled) or count == copies:
            answers = np.asarray(predict(stacked.with_shuffles(batch)))
            for index, (position, repeat, _) in enumerate(batch):
                part = answers[index * rows : (index + 1) * rows]
                drops[position, repeat] = baseline - scorer.metric(truth, part, classes)
            batch = []
    table = pd.DataFrame(
        {"feature": features.columns, "importance_mean": drops.mean(axis=1), "importance_std": drops.std(axis=1)}
    )
    return table.sort_values("importance_mean", ascending=False).reset_index(drop=True)
