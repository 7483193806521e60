"""AutoGluon's settings: the allowlist that a user's `params` pass through, the project's default
when they name no preset (a long portfolio, bagging when the budget allows it, a refit of the best
model, an inference limit), and the `fit` arguments these become (`autogluon_search` runs the fit).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.parameters.hyperparameters import check_single_values, validate_hyperparameters
from tabular_pipeline.parameters.strings import ParamValue

# Settings a user may pass in `params`, with defaults whose types the values must match.
AUTOGLUON_SETTINGS: dict[str, object] = {
    "presets": "medium_quality",
    "eval_metric": None,
    "excluded_model_types": None,
    "num_bag_folds": 0,
    "num_stack_levels": 0,
    "time_limit": 60.0,
}
# Settings the preset decides unless the user sets them (the `*_quality` presets above medium bag and stack).
PRESET_DECIDED = ("num_bag_folds", "num_stack_levels")
# The default when `params` names no preset. AutoGluon's plain `medium_quality` trains its short
# default portfolio once and stops (0.26 to 0.88 of a 300 s budget on the bench's tables), and its
# bagging presets refit after `time_limit` (1.07 to 1.28 times the budget for `good_quality`). So
# by default the search walks AutoGluon's `zeroshot` portfolio (the one `best_quality` uses) until
# its share of the budget is spent. Where the budget allows (`BAG_SECONDS_PER_ROW`) it bags in 5
# folds without stacking, then refits only the best model (and the ensemble members it needs) on
# all rows, which AutoGluon does not bound by `time_limit`: the 15% left is a rule of thumb,
# measured in bench/RESULTS.md ("AutoGluon's default"); otherwise it searches on a holdout and does
# not refit. `infer_limit` is per row at a batch of one: AutoGluon's own preprocessing plus the
# ensemble's members; it prunes the ensemble and the final choice, never training.
BUDGET_DEFAULTS: dict[str, object] = {
    "hyperparameters": "zeroshot",
    "num_bag_folds": 5,
    "num_stack_levels": 0,
    "refit_full": "best",
    "set_best_to_refit_full": True,
    "infer_limit": 0.05,
    "infer_limit_batch_size": 1,
}
# The budget's share the default leaves after the search: for the refit of the best ensemble when it
# bags, and without bagging (no refit) for what follows any search: AutoGluon ends its fit a few
# seconds past its limit, then the deployment copy and logging the model, 4 to 6 s after a whole 60 s
# budget of search. Hence also a floor in seconds, but never more than half the budget. Measured at
# 60 s and 300 s (bench/RESULTS.md); above 300 s the shares are unmeasured.
RESERVE_SHARE = {"bagged": 0.15, "holdout": 0.10}
RESERVE_FLOOR_S = 6.0
# Below this budget per training row the default searches on a holdout (no bagging, no refit): bagging
# trains each model once per fold, and at 4 ms a row it trained three models and overran the budget;
# at 20 ms a row bagging and a holdout tied (20 columns, 2 cores; bench/RESULTS.md, "a holdout for
# small budgets"). 10 ms is between the two, not a measured edge.
BAG_SECONDS_PER_ROW = 0.01
# The `*_quality` presets whose models all run on CPU without PyTorch or downloaded weights.
PRESETS = ("medium_quality", "good_quality", "high_quality", "best_quality")
# Presets that need PyTorch and downloaded foundation-model weights (or a GPU): refused offline.
OFFLINE_REFUSED_PRESET_PREFIXES = ("extreme", "eq", "experimental", "noncommercial")
# Model types the allowed presets train that this environment can run: the three boosters and two
# kinds of forest (each preset's other types are PyTorch ones; `test_automl_autogluon` checks this
# against AutoGluon's own preset configurations).
RUNNABLE_MODEL_TYPES = ("GBM", "CAT", "XGB", "RF", "XT")
# Model types that need PyTorch, downloaded weights or extra packages; always excluded, so AutoGluon
# does not try them and warn that each one failed.
UNAVAILABLE_MODEL_TYPES = (
    "NN_TORCH", "FASTAI", "REALMLP", "TABM", "TABPFNMIX", "TABPFN-2.6", "TABPFN-3", "REALTABPFN-V2",
    "REALTABPFN-V2.5", "MITRA", "TABICL", "TABDPT", "TABDPT-TURBO", "FT_TRANSFORMER", "AG_AUTOMM", "AG_TEXT_NN",
    "AG_IMAGE_NN", "EBM", "NORI", "GBM_PREP", "IM_RULEFIT", "IM_GREEDYTREE", "IM_BOOSTEDRULES", "IM_HSTREE", "IM_FIGS",
)  # fmt: skip
# AutoGluon's metric names, by task; the first is this project's primary metric for the task.
EVAL_METRICS = {
    "binary": ("roc_auc", "accuracy", "balanced_accuracy", "log_loss", "f1", "precision", "recall", "mcc"),
    "multiclass": ("f1_macro", "accuracy", "balanced_accuracy", "log_loss", "f1_micro", "f1_weighted", "mcc"),
    "regression": (
        "root_mean_squared_error", "mean_squared_error", "mean_absolute_error", "median_absolute_error", "r2",
    ),
}  # fmt: skip
MAX_BAG_FOLDS = 10
MAX_STACK_LEVELS = 3


def _as_list(value: ParamValue) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def check_preset(preset: object, echo: bool = True) -> str:
    """The preset's name, if this environment can run it; else one line that says why not (naming
    the value only when `echo`: a param_file's values stay unsaid)."""
    name = str(preset).strip()
    shown = f"'{name}'" if echo else "from param_file"
    if name.lower().startswith(OFFLINE_REFUSED_PRESET_PREFIXES):
        raise PipelineError(
            f"presets {shown} needs PyTorch and downloaded foundation-model weights, which this offline CPU "
            f"environment cannot provide; expected one of {', '.join(PRESETS)}"
        )
    if name not in PRESETS:
        raise PipelineError(f"presets {shown} is not a preset here; expected one of {', '.join(PRESETS)}")
    return name


def check_autogluon_params(params: Mapping[str, ParamValue], unechoed: Collection[str] = ()) -> None:
    """Validate names, types, the preset, model types, bagging and stacking (the metric against all
    tasks; `autogluon_settings` checks it against the task)."""
    if "time_budget" in params:  # FLAML's name, the one a DolphinScheduler user may carry over
        raise PipelineError(
            "setting 'time_budget' is FLAML's name; expected time_limit, AutoGluon's name for the budget (or -P "
            "time_budget)"
        )
    validate_hyperparameters(params, AUTOGLUON_SETTINGS, "autogluon", unechoed)
    check_single_values(params, ("excluded_model_types",), "autogluon", AUTOGLUON_SETTINGS)

    def shown(name: str) -> str:
        return "from param_file" if name in unechoed else repr(params[name])

    unset = [name for name, value in params.items() if value is None]
    if unset:
        raise PipelineError(
            f"setting '{unset[0]}' for autogluon is None; expected a value, or no setting for the default"
        )
    preset = check_preset(params.get("presets", AUTOGLUON_SETTINGS["presets"]), echo="presets" not in unechoed)
    excluded = _as_list(params.get("excluded_model_types"))
    # Naming a type that is always excluded (NN_TORCH, as AutoGluon's own examples do) is harmless.
    known = RUNNABLE_MODEL_TYPES + UNAVAILABLE_MODEL_TYPES
    unknown = [name for name in excluded if not isinstance(name, str) or name not in known]
    if unknown or isinstance(params.get("excluded_model_types"), (bool, int, float)):
        listed = (
            "unknown model types" if "excluded_model_types" in unechoed else unknown or [params["excluded_model_types"]]
        )
        raise PipelineError(
            f"excluded_model_types holds {listed}; expected model types among {', '.join(RUNNABLE_MODEL_TYPES)} (the "
            "PyTorch and foundation models are excluded here anyway)"
        )
    if set(RUNNABLE_MODEL_TYPES) <= set(excluded):
        raise PipelineError(
            f"excluded_model_types excludes every model type this environment can train; expected at least one of "
            f"{', '.join(RUNNABLE_MODEL_TYPES)} left"
        )
    folds = params.get("num_bag_folds")
    if folds is not None and int(folds) != 0 and not 2 <= int(folds) <= MAX_BAG_FOLDS:
        raise PipelineError(
            f"num_bag_folds is {shown('num_bag_folds')}; expected 0 (no bagging) or between 2 and {MAX_BAG_FOLDS}"
        )
    levels = int(params.get("num_stack_levels") or 0)
    if not 0 <= levels <= MAX_STACK_LEVELS:
        raise PipelineError(
            f"num_stack_levels is {shown('num_stack_levels')}; expected between 0 and {MAX_STACK_LEVELS}"
        )
    # Stacking needs bagged models: from num_bag_folds, or from a preset that bags (all but medium_quality,
    # and the default, which bags).
    preset_bags = preset != "medium_quality" or "presets" not in params
    if levels and folds is not None and int(folds) == 0:
        # An explicit 0 wins over any preset, so only num_bag_folds can fix it.
        raise PipelineError(
            "num_stack_levels asks for stacking but num_bag_folds=0 turns bagging off; expected num_bag_folds "
            "of 2 or more to stack"
        )
    if levels and folds is None and not preset_bags:
        raise PipelineError(
            "num_stack_levels asks for stacking without bagging; expected num_bag_folds of 2 or more (or a preset "
            "that bags, such as good_quality) to stack"
        )
    metric = params.get("eval_metric")
    if metric is not None and not any(metric in names for names in EVAL_METRICS.values()):
        known = sorted({name for names in EVAL_METRICS.values() for name in names})
        raise PipelineError(
            f"eval_metric {shown('eval_metric')} is not a metric here; expected one of {', '.join(known)}"
        )
    if "time_limit" in params and not 1 <= float(params["time_limit"]) <= 24 * 3600:
        limit = "out of range" if "time_limit" in unechoed else f"{params['time_limit']} s"
        raise PipelineError(f"time_limit is {limit}; expected between 1 and 86400 seconds")


def autogluon_settings(
    params: Mapping[str, ParamValue], time_budget: float, task: str, *, training_rows: int
) -> dict[str, object]:
    """Validate user settings and fill in this project's defaults.

    Args:
        params: parsed `params` (e.g. ``presets='good_quality';num_bag_folds=5``).
        time_budget: the step's budget in seconds (AutoGluon's `time_limit`), unless `params` sets time_limit.
        task: "binary", "multiclass" or "regression".
        training_rows: rows the search trains on; the default bags them only with at least
            `BAG_SECONDS_PER_ROW` of budget for each.

    Returns:
        The settings as logged: presets, eval_metric, time_limit, excluded_model_types (the user's),
        and num_bag_folds and num_stack_levels only where the user set them (else the preset decides).
        Without a preset in `params`, also `BUDGET_DEFAULTS` and `search_time_limit`, the search's
        share of the budget (`search_limit`); without bagging (the user's `num_bag_folds=0`, or a
        budget under `bag_min_budget`) no refit and a share at least as large. `bag_min_budget`, the
        budget from which the default bags these rows, is there only where that rule decided (the
        user set neither `num_bag_folds` nor stacking).
    """
    check_autogluon_params(params)
    budget = float(params.get("time_limit", time_budget))
    if not 1 <= budget <= 24 * 3600:
        raise PipelineError(f"time_budget is {budget:g} s; expected between 1 and 86400 seconds")
    metric = params.get("eval_metric") or EVAL_METRICS[task][0]
    if metric not in EVAL_METRICS[task]:
        raise PipelineError(f"eval_metric '{metric}' does not fit a {task} task; expected one of "
                            f"{', '.join(EVAL_METRICS[task])}")  # fmt: skip
    settings: dict[str, object] = {
        "presets": check_preset(params.get("presets", AUTOGLUON_SETTINGS["presets"])),
        "eval_metric": metric,
        "time_limit": budget,
        "excluded_model_types": [str(name) for name in _as_list(params.get("excluded_model_types"))],
    }
    if "presets" not in params:
        settings.update(BUDGET_DEFAULTS, search_time_limit=search_limit(budget, "bagged"))
        # Stacking needs the folds, so only where the user set neither does the budget decide.
        if params.get("num_bag_folds") is None and not params.get("num_stack_levels"):
            settings["bag_min_budget"] = round(training_rows * BAG_SECONDS_PER_ROW, 1)
            settings["num_bag_folds"] = 5 if budget >= settings["bag_min_budget"] else 0
    settings.update({name: int(params[name]) for name in PRESET_DECIDED if params.get(name) is not None})
    if settings.get("num_bag_folds") == 0 and "search_time_limit" in settings:
        # Unbagged models refit as slowly as they first trained: no refit, so less held back (10%, not 15%).
        settings.update(
            refit_full=False, set_best_to_refit_full=False, search_time_limit=search_limit(budget, "holdout")
        )
    return settings


def search_limit(budget: float, kind: str) -> float:
    """Seconds the default's search gets: the budget less `RESERVE_SHARE[kind]` of it, less at least
    `RESERVE_FLOOR_S`, but at least half the budget (60 s: 51 bagged, 54 on a holdout; 20 s: 14)."""
    reserve = min(budget / 2, max(budget * RESERVE_SHARE[kind], RESERVE_FLOOR_S))
    return round(budget - reserve, 1)


def stacking_arguments(settings: Mapping[str, object]) -> dict[str, object]:
    """`fit` arguments for bagging and stacking: none unless the user set them (the preset decides).

    `num_bag_folds=0` also turns stacking off (a preset that bags would otherwise stack without
    folds, which AutoGluon refuses); a set `num_stack_levels` also turns off AutoGluon's dynamic
    stacking, which may otherwise change it.
    """
    chosen = {name: settings[name] for name in PRESET_DECIDED if name in settings}
    if chosen.get("num_bag_folds") == 0:
        chosen["num_stack_levels"] = 0
    if "num_stack_levels" in chosen:
        chosen["dynamic_stacking"] = False
    return chosen


def default_arguments(settings: Mapping[str, object]) -> dict[str, object]:
    """`fit` arguments of the default (`BUDGET_DEFAULTS`) beyond bagging and stacking: none when the
    user named a preset."""
    names = ("hyperparameters", "refit_full", "set_best_to_refit_full", "infer_limit", "infer_limit_batch_size")
    return {name: settings[name] for name in names} if "hyperparameters" in settings else {}
