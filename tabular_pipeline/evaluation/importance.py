"""Permutation importance of the raw columns, the same for every algorithm, AutoML included.

scikit-learn's `permutation_importance` calls the model once per column and shuffle, and each call
pays the pipeline's fixed cost again. This module makes the same shuffles (same seed, same order;
`tests/test_modeling.py` compares the two) and predicts them stacked, a few calls in all, scoring
with the metric functions behind the three scorers `scoring_for_task` names. The saving is modest
where the model's own prediction dominates: 4.2 s to 3.6 s for a LightGBM model on 20 columns and
1,851 rows (about 100,000 rows predicted, one thread).
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
# Shuffled copies are stacked into calls of about this many rows: few calls, bounded memory on
# wide tables (the floor of 500 rows on 1,000 columns would otherwise stack 1.5M rows at once).
ROWS_PER_CALL = 20_000


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


def shuffled_columns(sample: pd.DataFrame, repeats: int, seed: int) -> Iterator[tuple[int, int, pd.Series]]:
    """Each column shuffled `repeats` times, as scikit-learn's `permutation_importance` shuffles it:
    one seed drawn from `seed`, a fresh generator per column, each shuffle applied to the last.
    Yields (column position, repeat, shuffled column carrying the sample's index)."""
    from sklearn.utils import check_random_state

    column_seed = check_random_state(seed).randint(np.iinfo(np.int32).max + 1)
    for position in range(sample.shape[1]):
        generator = check_random_state(column_seed)
        order = np.arange(len(sample))
        column = sample.iloc[:, position]
        for repeat in range(repeats):
            generator.shuffle(order)
            column = column.iloc[order]
            column.index = sample.index
            yield position, repeat, column


def permutation_importance_table(
    model, features: pd.DataFrame, label: pd.Series, scoring: str, seed: int
) -> pd.DataFrame:
    """Mean and std drop in `scoring` when each raw column is shuffled, largest first.

    Args:
        model: a fitted pipeline that takes raw columns.
        features: test rows (a seeded sample of `importance_rows` of them is used).
        label: their true labels.
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
    sample = features.sample(n=importance_rows(len(features), features.shape[1]), random_state=seed)
    truth = label.loc[sample.index]
    baseline = scorer.metric(truth, np.asarray(predict(sample)), classes)
    drops = np.full((sample.shape[1], IMPORTANCE_REPEATS), np.nan)
    copies_per_call = max(1, ROWS_PER_CALL // max(1, len(sample)))
    batch: list[tuple[int, int, pd.DataFrame]] = []

    def score_batch() -> None:
        answers = np.asarray(predict(pd.concat([copy for *_, copy in batch], ignore_index=True)))
        for index, (position, repeat, _) in enumerate(batch):
            rows = answers[index * len(sample) : (index + 1) * len(sample)]
            drops[position, repeat] = baseline - scorer.metric(truth, rows, classes)
        batch.clear()

    for position, repeat, column in shuffled_columns(sample, IMPORTANCE_REPEATS, seed):
        copy = sample.copy()
        copy[sample.columns[position]] = column
        batch.append((position, repeat, copy))
        if len(batch) == copies_per_call:
            score_batch()
    if batch:
        score_batch()
    table = pd.DataFrame(
        {"feature": features.columns, "importance_mean": drops.mean(axis=1), "importance_std": drops.std(axis=1)}
    )
    return table.sort_values("importance_mean", ascending=False).reset_index(drop=True)
