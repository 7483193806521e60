"""What a finished AutoGluon fit left, as this project records it: the validation score of the
served model, its ensemble and libraries, a model `infer_limit` passed over, and why nothing was
trained. Split from `autogluon_search` (the fit; `autogluon_settings` has its settings) to keep each module readable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from autogluon.tabular import TabularPredictor


def choice_warnings(
    leaderboard: pd.DataFrame, refit_sources: Mapping[str, str], best: str, settings: Mapping[str, object]
) -> tuple[str, ...]:
    """One line where AutoGluon passed over a model with a better validation score because it answers
    one row slower than `infer_limit` (AutoGluon compares the limit less its own preprocessing time,
    relaxes it to its fastest models when none meets it, and says so below the log level this step
    lets through). AutoGluon otherwise serves the model with the best validation score (ties go to
    the faster), so without the limit this is empty.
    """
    scored = leaderboard.dropna(subset=["score_val"])
    if "infer_limit" not in settings or not len(scored):
        return ()
    top = scored.loc[scored["score_val"].idxmax()]
    chosen = validation_score(leaderboard, refit_sources, best)
    if not chosen < top["score_val"]:
        return ()
    return (
        f"AutoGluon serves {best} (validation score {chosen:.4f}), not {top['model']} ({top['score_val']:.4f}), "
        f"which answers one row slower than infer_limit={settings['infer_limit']:g} s",
    )


def no_model_message(failures: pd.DataFrame, time_limit: float, search_s: float | None = None) -> str:
    """Why nothing was trained: the budget, when every model ran out of time (or none started), or
    the models' own errors. `search_s` is the search's share of the budget, where it had one."""
    errors = failures[failures["exc_type"] != "TimeLimitExceeded"] if len(failures) else failures
    if not len(errors):
        within = f"time_limit={time_limit:g} s" + (f" ({search_s:g} s of search)" if search_s is not None else "")
        return f"AutoGluon trained no model within {within}; expected a larger budget or fewer excluded model types"
    named = ", ".join(f"{row.model} ({row.exc_type}: {row.exc_str})" for row in errors.head(3).itertuples())
    return f"AutoGluon trained no model: {named}; expected at least one model type to train on this table"


def validation_score(leaderboard: pd.DataFrame, refit_sources: Mapping[str, str], best: str) -> float:
    """The best model's validation score, or, for a model refit on all rows (`*_FULL`, which has
    none of its own), the score of the model it was refit from; NaN when there is none."""
    validated = refit_sources.get(best, best)
    score = leaderboard.loc[leaderboard["model"] == validated, "score_val"]
    return float(score.iloc[0]) if len(score) else float("nan")


def ensemble_weights(predictor: TabularPredictor, model: str) -> dict[str, float]:
    """The members of a weighted ensemble and their weights (averaged over bagged folds); a model
    that is not an ensemble is its own only member."""
    children = predictor.model_info(model).get("children_info", {}).values()
    weights: dict[str, float] = {}
    for child in children:
        for member, weight in (child.get("model_weights") or {}).items():
            weights[str(member)] = weights.get(str(member), 0.0) + float(weight) / len(children)
    return weights or {model: 1.0}


# AutoGluon's model classes whose predictions import a library of their own.
LIBRARY_OF_MODEL_CLASS = {"LGBModel": "lightgbm", "CatBoostModel": "catboost", "XGBoostModel": "xgboost"}


def libraries_of(predictor: TabularPredictor) -> list[str]:
    """The booster libraries (lightgbm, catboost, xgboost) the predictor's models import to predict."""
    libraries = set()
    for name in predictor.model_names():
        info = predictor.model_info(name)
        for model_class in (info.get("model_type"), info.get("bagged_info", {}).get("child_model_type")):
            if model_class in LIBRARY_OF_MODEL_CLASS:
                libraries.add(LIBRARY_OF_MODEL_CLASS[model_class])
    return sorted(libraries)
