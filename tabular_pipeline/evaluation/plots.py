"""Pictures a person opens from the run page: confusion matrix, ROC and PR curves, residuals, and
permutation importance of the raw columns (the same for every algorithm, AutoML included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# Permutation importance predicts rows x (1 + repeats x columns) rows, so its cost grows with the
# table's width: the sample is sized to a budget of predicted rows, between a floor and a ceiling. (2,000 rows
# and 5 repeats for every width took 8 to 18 s of a 300k-row, 30-column `train_basic`.)
IMPORTANCE_PREDICTED_ROWS = 100_000
IMPORTANCE_MIN_ROWS = 500
IMPORTANCE_MAX_ROWS = 2000
IMPORTANCE_REPEATS = 3
# The residual plot draws a seeded sample of at most this many test rows.
PLOT_ROWS = 5000
TOP_FEATURES = 20


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def importance_rows(test_rows: int, columns: int) -> int:
    """How many test rows permutation importance shuffles: the budget of predicted rows shared by
    `IMPORTANCE_REPEATS` passes over every column, kept between the floor and the ceiling, and never
    more than the test split holds."""
    budget = IMPORTANCE_PREDICTED_ROWS // (IMPORTANCE_REPEATS * max(1, columns))
    return min(test_rows, max(IMPORTANCE_MIN_ROWS, min(IMPORTANCE_MAX_ROWS, budget)))


def permutation_importance_table(
    model, features: pd.DataFrame, label: pd.Series, scoring: str, seed: int
) -> pd.DataFrame:
    """Mean and std drop in `scoring` when each raw column is shuffled, largest first.

    Args:
        model: a fitted pipeline that takes raw columns.
        features: test rows (a seeded sample of `importance_rows` of them is used).
        label: their true labels.
        scoring: a scikit-learn scorer name.
        seed: the shuffling seed.

    Returns:
        Columns `feature`, `importance_mean`, `importance_std`.
    """
    from sklearn.inspection import permutation_importance

    sample = features.sample(n=importance_rows(len(features), features.shape[1]), random_state=seed)
    result = permutation_importance(
        model,
        sample,
        label.loc[sample.index],
        scoring=scoring,
        n_repeats=IMPORTANCE_REPEATS,
        random_state=seed,
        n_jobs=1,
    )
    table = pd.DataFrame(
        {
            "feature": features.columns,
            "importance_mean": result.importances_mean,
            "importance_std": result.importances_std,
        }
    )
    return table.sort_values("importance_mean", ascending=False).reset_index(drop=True)


def save_importance_plot(table: pd.DataFrame, path: Path) -> Path:
    """A horizontal bar chart of the top features' permutation importance."""
    plt = _figure()
    top = table.head(TOP_FEATURES).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(top) + 1.5))
    ax.barh(top["feature"], top["importance_mean"], xerr=top["importance_std"], color="#3b75af")
    ax.set_xlabel("drop in score when shuffled")
    ax.set_title("Permutation importance (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_classification_plots(
    label: pd.Series, predictions: np.ndarray, positive_scores: np.ndarray | None, positive_class, folder: Path
) -> list[Path]:
    """Confusion matrix always; ROC and precision-recall curves when binary scores are given.

    Args:
        label: the true test labels.
        predictions: the predicted labels.
        positive_scores: the probability of `positive_class` per row (binary tasks), or None.
        positive_class: the label those scores are for.
        folder: where the PNG files go.

    Returns:
        The files written.
    """
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    plt = _figure()
    written = []
    fig, ax = plt.subplots(figsize=(6, 5))
    ConfusionMatrixDisplay.from_predictions(label, predictions, ax=ax, colorbar=False)
    ax.set_title("Confusion matrix (test split)")
    fig.tight_layout()
    written.append(folder / "confusion_matrix.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)
    if positive_scores is not None:
        for name, display in (("roc_curve.png", RocCurveDisplay), ("pr_curve.png", PrecisionRecallDisplay)):
            fig, ax = plt.subplots(figsize=(6, 5))
            display.from_predictions(label, positive_scores, pos_label=positive_class, ax=ax)
            fig.tight_layout()
            written.append(folder / name)
            fig.savefig(written[-1], dpi=100)
            plt.close(fig)
    return written


def save_regression_plots(label: pd.Series, predictions: np.ndarray, folder: Path) -> list[Path]:
    """Residuals against predictions."""
    from sklearn.metrics import PredictionErrorDisplay

    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 5))
    # A scatter of more points than this shows nothing more and costs seconds to draw.
    shown = min(len(label), PLOT_ROWS)
    PredictionErrorDisplay.from_predictions(
        label, predictions, kind="residual_vs_predicted", subsample=shown, random_state=0, ax=ax
    )
    ax.set_title("Residuals (test split)")
    fig.tight_layout()
    path = folder / "residuals.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
