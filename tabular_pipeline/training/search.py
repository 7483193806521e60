"""Hyperparameter searches: a cross-validated grid or randomised search over a pipeline, scored by
the task's primary metric."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.evaluation.metrics import scoring_for_task
from tabular_pipeline.training.pipelines import estimator_param_prefix

# Randomised search replaces an exhaustive grid above this many candidates.
MAX_GRID_CANDIDATES = 20


def count_candidates(grid: Mapping[str, list]) -> int:
    """How many combinations an exhaustive search over `grid` would fit."""
    return int(np.prod([len(values) for values in grid.values()]))


def build_search(pipeline, grid: Mapping[str, list], task: str, algorithm: str, cv: int, seed: int, n_jobs: int = 1):
    """Wrap the pipeline in a cross-validated search over `grid`.

    An exhaustive grid is used up to `MAX_GRID_CANDIDATES` candidates, a randomised search beyond.

    Args:
        pipeline: the unfitted pipeline.
        grid: estimator hyperparameter names mapped to the values to try.
        task: the learning task (picks the scoring and the fold splitter).
        algorithm: which estimator the pipeline holds (picks the parameter prefix).
        cv: the number of folds (at least 2).
        seed: the random seed of folds and sampling.
        n_jobs: parallel fits.

    Returns:
        An unfitted GridSearchCV or RandomizedSearchCV.
    """
    from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV, StratifiedKFold

    if cv < 2:
        raise PipelineError(f"cv is {cv}; expected at least 2 folds for a search")
    prefix = estimator_param_prefix(task, algorithm)
    space = {prefix + name: values for name, values in grid.items()}
    folds = (
        KFold(cv, shuffle=True, random_state=seed)
        if task == "regression"
        else StratifiedKFold(cv, shuffle=True, random_state=seed)
    )
    candidates = count_candidates(grid)
    common = dict(scoring=scoring_for_task(task), cv=folds, n_jobs=n_jobs, refit=True, error_score="raise")
    if candidates <= MAX_GRID_CANDIDATES:
        return GridSearchCV(pipeline, space, **common)
    return RandomizedSearchCV(pipeline, space, n_iter=MAX_GRID_CANDIDATES, random_state=seed, **common)


def search_results_table(search) -> pd.DataFrame:
    """One row per candidate: its parameters, mean and std score, and rank."""
    results = pd.DataFrame(search.cv_results_)
    keep = [c for c in results.columns if c.startswith("param_")] + [
        "mean_test_score",
        "std_test_score",
        "rank_test_score",
        "mean_fit_time",
    ]
    table = results[keep].rename(columns=lambda c: c.rsplit("__", 1)[-1] if c.startswith("param_") else c)
    return table.sort_values("rank_test_score").reset_index(drop=True)
