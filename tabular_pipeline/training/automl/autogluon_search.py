"""AutoML with AutoGluon: the fit on the raw training columns, with the settings `autogluon_settings`
validated, and what the step records about it (leaderboard, best model, ensemble).

AutoGluon does its own preprocessing of text, categories and missing values, so it gets the raw
frame; the fitted predictor is served as-is (`tabular_pipeline.serving.autogluon`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.training.automl.autogluon_outcome import (
    choice_warnings,
    ensemble_weights,
    libraries_of,
    no_model_message,
    validation_score,
)
from tabular_pipeline.training.automl.autogluon_settings import (
    UNAVAILABLE_MODEL_TYPES,
    default_arguments,
    stacking_arguments,
)

if TYPE_CHECKING:
    from autogluon.tabular import TabularPredictor


@dataclass(frozen=True)
class SearchOutcome:
    """What a finished fit left: the deployable predictor folder and what the step records (the
    leaderboard, the models that failed and why, the best model, its ensemble, its libraries)."""

    predictor_dir: Path
    leaderboard: pd.DataFrame
    failures: pd.DataFrame
    best_model: str
    # AutoGluon's validation score of the best model (or of the one it was refit from): higher is better,
    # so error metrics are negative (RMSE -0.5).
    best_validation_score: float
    ensemble: dict[str, float]
    libraries: list[str]
    bag_folds_used: int
    stack_levels_used: int
    # One line where infer_limit made AutoGluon serve a model other than its best (`choice_warnings`).
    warnings: tuple[str, ...] = ()


def run_search(
    train: pd.DataFrame, label: str, task: str, settings: Mapping[str, object], workdir: Path
) -> tuple[TabularPredictor, SearchOutcome]:
    """Fit AutoGluon on the raw training rows and keep a deployment copy of the predictor.

    Args:
        train: the training rows (kept feature columns and the label).
        label: the target column.
        task: "binary", "multiclass" or "regression" (AutoGluon's `problem_type`).
        settings: what `autogluon_settings` returned.
        workdir: a scratch folder; the fit goes to `fit/`, the copy that is served to `predictor/`.

    Returns:
        The fitted `TabularPredictor` (the deployment copy) and its `SearchOutcome`.
    """
    import warnings

    from autogluon.tabular import TabularPredictor

    predictor = TabularPredictor(
        label=label,
        problem_type=task,
        eval_metric=settings["eval_metric"],
        path=str(workdir / "fit"),
        verbosity=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        route_autogluon_log()
        try:
            predictor.fit(
                train,
                time_limit=settings.get("search_time_limit", settings["time_limit"]),
                presets=settings["presets"],
                excluded_model_types=[*settings["excluded_model_types"], *UNAVAILABLE_MODEL_TYPES],
                # Sequential fits: AutoGluon's parallel mode needs Ray, which is not installed.
                fit_strategy="sequential",
                num_gpus=0,
                # No model at all is this step's one-line error below, not AutoGluon's exception.
                raise_on_no_models_fitted=False,
                **stacking_arguments(settings),
                **default_arguments(settings),
            )
        finally:
            route_autogluon_log()
        failures = predictor.model_failures()
        if not predictor.model_names():
            raise PipelineError(no_model_message(failures, settings["time_limit"], settings.get("search_time_limit")))
        leaderboard = predictor.leaderboard(silent=True)
        summary = predictor.fit_summary(verbosity=0)
        best = predictor.model_best
        deployed = predictor.clone_for_deployment(str(workdir / "predictor"), return_clone=True)
    refit_sources = predictor.model_refit_map(inverse=True)
    return deployed, SearchOutcome(
        predictor_dir=workdir / "predictor",
        leaderboard=leaderboard,
        failures=failures,
        best_model=best,
        best_validation_score=validation_score(leaderboard, refit_sources, best),
        ensemble=ensemble_weights(deployed, best),
        libraries=libraries_of(deployed),
        # What ran, which the preset or AutoGluon's own checks may have changed (levels: base models are 1).
        bag_folds_used=int(summary["num_bag_folds"]),
        stack_levels_used=max(0, int(summary["max_stack_level"]) - 2),
        warnings=choice_warnings(leaderboard, refit_sources, best, settings),
    )


def route_autogluon_log() -> None:
    """AutoGluon prints through a bare handler of its own (and adds it again when a predictor is
    made); its records take this step's format instead."""
    import logging

    autogluon_log = logging.getLogger("autogluon")
    autogluon_log.handlers.clear()
    autogluon_log.propagate = True
