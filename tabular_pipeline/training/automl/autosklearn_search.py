"""AutoML with auto-sklearn: validated settings, and the hand-over to the worker project that runs
the search on Python 3.9 (`autosklearn_worker/`, launched by MLflow with its own virtualenv).

The worker never talks to the tracking store: this step writes the request and the splits to a
scratch folder, the worker writes the model and its evaluation inputs back, and this step logs them.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tabular_pipeline.errors import PipelineError, one_line
from tabular_pipeline.parameters.hyperparameters import check_single_values, validate_hyperparameters
from tabular_pipeline.parameters.strings import ParamValue
from tabular_pipeline.paths import AUTOSKLEARN_WORKER_DIR

WORKER_ENTRY_POINT = "search"
# auto-sklearn refuses budgets under 30 s.
MIN_BUDGET_S = 30
MAX_BUDGET_S = 24 * 3600
# Settings a user may pass in `params`, with defaults whose types the values must match.
AUTOSKLEARN_SETTINGS: dict[str, object] = {
    "time_left_for_this_task": 60,
    "per_run_time_limit": None,
    "memory_limit": 3072,
    "ensemble_nbest": 50,
    "max_models_on_disc": 50,
    "initial_configurations_via_metalearning": 25,
    "resampling_strategy": "holdout",
    "include_estimators": None,
    "seed": 1,
}
RESAMPLING_STRATEGIES = ("holdout", "cv")
CLASSIFIERS = (
    "adaboost", "bernoulli_nb", "decision_tree", "extra_trees", "gaussian_nb", "gradient_boosting",
    "k_nearest_neighbors", "lda", "liblinear_svc", "libsvm_svc", "mlp", "multinomial_nb", "passive_aggressive", "qda",
    "random_forest", "sgd",
)  # fmt: skip
REGRESSORS = (
    "adaboost", "ard_regression", "decision_tree", "extra_trees", "gaussian_process", "gradient_boosting",
    "k_nearest_neighbors", "liblinear_svr", "libsvm_svr", "mlp", "random_forest", "sgd",
)  # fmt: skip
AUTOSKLEARN_METRIC = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "root_mean_squared_error"}


def check_autosklearn_params(
    params: Mapping[str, ParamValue], time_budget: float, unechoed: Collection[str] = ()
) -> tuple[int, int]:
    """Validate names, types, the budget and the per-run limit; returns (budget, per-run limit) in seconds."""
    validate_hyperparameters(params, AUTOSKLEARN_SETTINGS, "autosklearn", unechoed)
    check_single_values(params, ("include_estimators",), "autosklearn", AUTOSKLEARN_SETTINGS)
    budget = params.get("time_left_for_this_task", time_budget)
    if not MIN_BUDGET_S <= float(budget) <= MAX_BUDGET_S:
        raise PipelineError(
            f"the auto-sklearn budget is {float(budget):g} s; expected between {MIN_BUDGET_S} and {MAX_BUDGET_S} "
            "seconds"
        )
    budget = int(budget)
    per_run = int(params.get("per_run_time_limit") or max(5, budget // 4))
    if not 1 <= per_run <= budget:
        raise PipelineError(f"per_run_time_limit is {per_run} s; expected between 1 and the budget of {budget} s")
    strategy = params.get("resampling_strategy", "holdout")
    if strategy not in RESAMPLING_STRATEGIES:
        raise PipelineError(f"resampling_strategy is {strategy!r}; expected one of {', '.join(RESAMPLING_STRATEGIES)}")
    if int(params.get("memory_limit", AUTOSKLEARN_SETTINGS["memory_limit"])) < 512:
        raise PipelineError(f"memory_limit is {params['memory_limit']} MB; expected at least 512 MB")
    estimators = params.get("include_estimators") or []
    unknown = [
        name
        for name in ([estimators] if isinstance(estimators, str) else estimators)
        if name not in CLASSIFIERS + REGRESSORS
    ]
    if unknown:
        raise PipelineError(
            f"include_estimators holds {unknown}; expected names among "
            f"{', '.join(sorted(set(CLASSIFIERS + REGRESSORS)))}"
        )
    return budget, per_run


def autosklearn_settings(
    params: Mapping[str, ParamValue], time_budget: float, task: str, seed: int
) -> dict[str, object]:
    """Validate user settings and fill in this project's defaults.

    Args:
        params: parsed `params` (e.g. ``time_left_for_this_task=60;per_run_time_limit=20``).
        time_budget: the step's budget in seconds, used unless `params` sets time_left_for_this_task.
        task: "binary", "multiclass" or "regression".
        seed: the search's seed, unless `params` sets one.

    Returns:
        Keyword arguments for auto-sklearn's estimator (without metric and scratch folders).
    """
    budget, per_run = check_autosklearn_params(params, time_budget)
    settings: dict[str, object] = {
        "time_left_for_this_task": budget,
        "per_run_time_limit": per_run,
        "memory_limit": int(params.get("memory_limit", AUTOSKLEARN_SETTINGS["memory_limit"])),
        "resampling_strategy": params.get("resampling_strategy", "holdout"),
        "seed": int(params.get("seed", seed)),
    }
    for name in ("ensemble_nbest", "max_models_on_disc", "initial_configurations_via_metalearning"):
        settings[name] = int(params.get(name, AUTOSKLEARN_SETTINGS[name]))
    estimators = params.get("include_estimators")
    if estimators:
        estimators = [estimators] if isinstance(estimators, str) else list(estimators)
        known = REGRESSORS if task == "regression" else CLASSIFIERS
        unknown = [name for name in estimators if name not in known]
        if unknown:
            raise PipelineError(f"include_estimators holds {unknown}; expected names among {', '.join(known)}")
        settings["include"] = {"regressor" if task == "regression" else "classifier": estimators}
    return settings


def config_params(config: Mapping[str, object]) -> dict[str, object]:
    """auto-sklearn's configuration names made into MLflow param names
    (``classifier:__choice__`` -> ``classifier.choice``)."""
    return {name.replace("__choice__", "choice").replace(":", "."): value for name, value in config.items()}


@dataclass(frozen=True)
class WorkerResult:
    """What the worker wrote: the saved model, the trial table, the best configuration, the model's
    answer on the test split, and permutation importance (None when it could not be computed)."""

    model_dir: Path
    trials: pd.DataFrame
    best: dict
    test_output: pd.DataFrame
    importance: pd.DataFrame | None


def write_worker_request(
    workdir: Path, train: pd.DataFrame, test: pd.DataFrame, feature_columns: list[str], request: dict
) -> None:
    """Put the splits and the request where the worker reads them."""
    train.to_parquet(workdir / "train.parquet", index=False)
    test.to_parquet(workdir / "test.parquet", index=False)
    (workdir / "request.json").write_text(json.dumps({**request, "feature_columns": list(feature_columns)}))


def read_worker_result(workdir: Path) -> WorkerResult:
    """Read back what the worker wrote; a missing piece means the worker did not finish."""
    if not (workdir / "done.json").is_file():
        reason = (
            (workdir / "error.txt").read_text().strip()
            if (workdir / "error.txt").is_file()
            else "it stopped before writing its results"
        )
        raise PipelineError(f"the auto-sklearn search failed: {reason}; expected it to finish within its budget")
    importance_file = workdir / "feature_importance.csv"
    return WorkerResult(
        model_dir=workdir / "model",
        trials=pd.read_csv(workdir / "trials.csv"),
        best=json.loads((workdir / "best.json").read_text()),
        test_output=pd.read_parquet(workdir / "test_output.parquet"),
        importance=pd.read_csv(importance_file) if importance_file.is_file() else None,
    )


def served_output(test_output: pd.DataFrame, task: str):
    """The worker's answer as a served model gives it: values for regression, else the frame."""
    return test_output["prediction"].to_numpy() if task == "regression" else test_output


def run_worker(workdir: Path, experiment_id: str) -> str:
    """Run the worker project in its own Python 3.9 virtualenv, as a child run of the active run.

    MLflow builds the environment on first use (about a minute) and reuses it afterwards; a
    model the worker saves records the same environment, so serving it reuses it too.

    Returns:
        The worker run's id (its status is FINISHED, FAILED or KILLED like any project run).
    """
    import os
    import shutil
    import sys

    import mlflow
    from mlflow.exceptions import ExecutionException, MlflowException

    # MLflow starts the worker with a bare `mlflow run` and finds Python 3.9.18 with a bare `pyenv`:
    # put this interpreter's scripts and a default pyenv install on PATH, for callers (notebooks,
    # unactivated venvs) whose PATH lacks them.
    extra = [str(Path(sys.executable).parent), str(Path.home() / ".pyenv" / "bin")]
    os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "")])
    if shutil.which("pyenv") is None:
        raise PipelineError(
            "auto-sklearn needs pyenv on PATH (with Python 3.9.18) to build its environment; expected `pyenv` to be "
            "found"
        )
    # One line per environment build instead of pip's per-package chatter.
    os.environ.setdefault("PIP_QUIET", "1")
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    try:
        submitted = mlflow.projects.run(
            str(AUTOSKLEARN_WORKER_DIR),
            entry_point=WORKER_ENTRY_POINT,
            parameters={"workdir": str(workdir)},
            experiment_id=experiment_id,
            env_manager="virtualenv",
            run_name="autosklearn-search",
            synchronous=False,
            storage_dir=str(workdir),  # MLflow's per-run folder, removed with the step's scratch
        )
    except (ExecutionException, MlflowException) as error:
        raise PipelineError(
            f"could not start the auto-sklearn worker: {one_line(error)}; expected MLflow to build its Python 3.9 env"
        ) from None
    try:
        submitted.wait()
    except BaseException:
        # The step was stopped (SIGTERM): stop the search too, so no process outlives its run.
        submitted.cancel()
        raise
    return submitted.run_id
