"""Pictures a person opens from the run page: confusion matrix, ROC and PR curves, residuals, and
the permutation importance chart (the same for every algorithm, AutoML included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# The residual plot draws a seeded sample of at most this many test rows.
PLOT_ROWS = 5000
TOP_FEATURES = 20


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
