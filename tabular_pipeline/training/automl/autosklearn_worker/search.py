"""Entry point `search` of the auto-sklearn worker: fit auto-sklearn on the train split the
train_automl step wrote, save a servable pyfunc model, and write what the step logs.

Runs on Python 3.9 (auto-sklearn 0.15 cannot run on newer Pythons) and never talks to the tracking
store: the calling step owns the MLflow run and logs everything this script writes.

Reads from WORKDIR: request.json, train.parquet, test.parquet.
Writes to WORKDIR: model/ (an MLflow pyfunc model), trials.csv, best.json, test_output.parquet,
feature_importance.csv (when it can be computed), done.json.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import click
import numpy as np
import pandas as pd
from autosklearn_model import (
    COLUMNS_ARTIFACT,
    ESTIMATOR_ARTIFACT,
    PROBABILITIES_PARAM,
    AutoSklearnModel,
    describe_columns,
)

WORKER_DIR = Path(__file__).resolve().parent
log = logging.getLogger("autosklearn")


def model_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as categoricals (auto-sklearn refuses object columns), numbers as float."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if (
            isinstance(column.dtype, pd.CategoricalDtype)
            or column.dtype == object
            or pd.api.types.is_bool_dtype(column)
        ):
            text = column.astype("object").where(column.notna(), None).map(lambda v: None if v is None else str(v))
            out[name] = pd.Categorical(text)
        else:
            out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
    return out


def trial_table(automl) -> pd.DataFrame:
    """One row per trial: learner, configuration, validation score, status and fit time."""
    results = automl.cv_results_
    learner_key = next(
        (
            key
            for key in results
            if key.endswith("__choice__") and key.split(":")[0] in ("param_classifier", "param_regressor")
        ),
        None,
    )
    rows = []
    for index, config in enumerate(results["params"]):
        rows.append(
            {
                "trial": index,
                "learner": str(results[learner_key][index]) if learner_key else "",
                "validation_score": float(results["mean_test_score"][index]),
                "status": str(results["status"][index]),
                "trial_time_s": float(results["mean_fit_time"][index]),
                "config": json.dumps(
                    {k: (v.item() if hasattr(v, "item") else v) for k, v in config.items()}, sort_keys=True, default=str
                ),
            }
        )
    return pd.DataFrame(rows, columns=["trial", "learner", "validation_score", "status", "trial_time_s", "config"])


def ensemble_summary(automl) -> list[dict]:
    """The ensemble's members, heaviest first: weight, learner, validation cost and configuration."""
    board = automl.leaderboard(detailed=True, ensemble_only=True)
    configs = automl.automl_.runhistory_.ids_config
    members = []
    for _, row in board.sort_values("ensemble_weight", ascending=False).iterrows():
        config = configs.get(int(row["config_id"]))
        members.append(
            {
                "weight": float(row["ensemble_weight"]),
                "learner": str(row["type"]),
                "cost": float(row["cost"]),
                "config": {
                    k: (v.item() if hasattr(v, "item") else v)
                    for k, v in (config.get_dictionary() if config else {}).items()
                },
            }
        )
    return members


class RawRowsEstimator:
    """The saved pyfunc model seen as a scikit-learn estimator, for permutation importance."""

    _estimator_type = None

    def __init__(self, pyfunc_model, classes):
        self.model, self.classes_ = pyfunc_model, np.asarray(classes) if classes is not None else None
        self._estimator_type = "regressor" if classes is None else "classifier"

    def fit(self, *args):  # noqa: ARG002 - scikit-learn's scorers require the attribute
        return self

    def predict(self, frame):
        output = self.model.predict(frame)
        return np.asarray(output)

    def predict_proba(self, frame):
        output = self.model.predict(frame, params={PROBABILITIES_PARAM: True})
        return output[[c for c in output.columns if c.startswith("probability_")]].to_numpy()


def permutation_table(
    estimator: RawRowsEstimator, features: pd.DataFrame, label: pd.Series, request: dict
) -> pd.DataFrame:
    """Mean and std drop in the primary score when each raw column is shuffled (as the main project computes it)."""
    from sklearn.inspection import permutation_importance

    seed = int(request["seed"])
    sample = features.sample(n=min(len(features), int(request["importance_rows"])), random_state=seed)
    result = permutation_importance(
        estimator,
        sample,
        label.loc[sample.index],
        scoring=request["scoring"],
        n_repeats=int(request["importance_repeats"]),
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


@contextmanager
def progress_lines(budget_s: int, every_s: float = 15.0):
    """Log how much of the budget is used while the search runs (it prints nothing itself)."""
    started, stop = time.monotonic(), threading.Event()

    def report():
        while not stop.wait(every_s):
            log.info("searching: %.0f of %d s used", time.monotonic() - started, budget_s)

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def fit_automl(train: pd.DataFrame, request: dict, workdir: Path):
    """Run auto-sklearn's search; returns the fitted estimator and the class labels (None for regression)."""
    import autosklearn.classification
    import autosklearn.metrics
    import autosklearn.regression
    import dask

    label = request["label_column"]
    features, target = model_frame(train[request["feature_columns"]]), train[label]
    settings = dict(request["settings"])
    settings.update(
        seed=int(request["seed"]),
        metric=getattr(autosklearn.metrics, request["metric"]),
        # Scratch space inside the step's temporary folder, removed with it.
        tmp_folder=str(workdir / "autosklearn_tmp"),
        delete_tmp_folder_after_terminate=True,
        n_jobs=1,
    )
    dask.config.set({"temporary-directory": str(workdir / "dask")})
    if request["task"] == "regression":
        automl, classes, y = (
            autosklearn.regression.AutoSklearnRegressor(**settings),
            None,
            target.astype("float64").to_numpy(),
        )
    else:
        classes = sorted(pd.unique(target).tolist(), key=lambda value: (str(type(value)), value))
        index = {value: position for position, value in enumerate(classes)}
        automl, y = (
            autosklearn.classification.AutoSklearnClassifier(**settings),
            target.map(index).to_numpy().astype(int),
        )
    with warnings.catch_warnings(), progress_lines(int(settings["time_left_for_this_task"])):
        warnings.simplefilter("ignore")
        automl.fit(features, y)
    if not automl.automl_.models_ and not getattr(automl.automl_, "cv_models_", None):
        raise RuntimeError(
            f"auto-sklearn found no model within time_left_for_this_task={settings['time_left_for_this_task']} s"
        )
    return automl, classes, features


def save_model(automl, classes, features: pd.DataFrame, raw_features: pd.DataFrame, workdir: Path) -> Path:
    """Save the estimator as an MLflow pyfunc model that records this worker's environment.

    `features` are the columns the search saw; the signature and example use `raw_features`, the
    table's columns as clients send them (screened-out ones included, then ignored).
    """
    import cloudpickle
    import mlflow
    from mlflow.models import infer_signature

    scratch = workdir / "model_parts"
    scratch.mkdir()
    estimator_file, columns_file = scratch / "estimator.pkl", scratch / "columns.json"
    with open(estimator_file, "wb") as handle:
        cloudpickle.dump(automl, handle)
    columns_file.write_text(json.dumps(describe_columns(features, classes)))
    example = raw_features.head(5).astype(
        {name: "object" for name in raw_features.columns if isinstance(raw_features[name].dtype, pd.CategoricalDtype)}
    )
    model_dir = workdir / "model"
    requirements = [
        line.strip()
        for line in (WORKER_DIR / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    model = AutoSklearnModel()
    model.load_context(
        type(
            "Context", (), {"artifacts": {ESTIMATOR_ARTIFACT: str(estimator_file), COLUMNS_ARTIFACT: str(columns_file)}}
        )()
    )
    signature = infer_signature(example, model.predict(None, example), params={PROBABILITIES_PARAM: False})
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=model,
        artifacts={ESTIMATOR_ARTIFACT: str(estimator_file), COLUMNS_ARTIFACT: str(columns_file)},
        code_paths=[str(WORKER_DIR / "autosklearn_model.py")],
        signature=signature,
        input_example=example,
        pip_requirements=requirements,
    )
    # The recorded environment is exactly this worker's: same file contents give the same
    # virtualenv name, so `mlflow models serve` finds the environment this search ran in.
    shutil.copy(WORKER_DIR / "python_env.yaml", model_dir / "python_env.yaml")
    shutil.copy(WORKER_DIR / "requirements.txt", model_dir / "requirements.txt")
    shutil.rmtree(scratch)
    return model_dir


def run_search(workdir: Path) -> None:
    """The whole worker job; see the module docstring for its inputs and outputs."""
    import mlflow

    request = json.loads((workdir / "request.json").read_text())
    label = request["label_column"]
    train, test = pd.read_parquet(workdir / "train.parquet"), pd.read_parquet(workdir / "test.parquet")
    started = time.monotonic()
    log.info(
        "auto-sklearn search: %s, %s s budget, %d training rows",
        request["task"],
        request["settings"]["time_left_for_this_task"],
        len(train),
    )
    automl, classes, features = fit_automl(train, request, workdir)
    trials = trial_table(automl)
    trials.to_csv(workdir / "trials.csv", index=False)
    members = ensemble_summary(automl)
    best = members[0] if members else {"learner": "", "config": {}}
    (workdir / "best.json").write_text(
        json.dumps(
            {
                "best_estimator": best["learner"],
                "best_config": best["config"],
                "ensemble": members,
                "metric": request["metric"],
            },
            default=str,
            indent=1,
        )
    )
    log.info(
        "search done in %.0f s: %d trials, ensemble of %d, best %s",
        time.monotonic() - started,
        len(trials),
        len(members),
        best["learner"],
    )
    model_dir = save_model(automl, classes, features, train.drop(columns=[label]), workdir)
    served = mlflow.pyfunc.load_model(str(model_dir))
    test_features, test_label = test.drop(columns=[label]), test[label]
    params = {PROBABILITIES_PARAM: True} if classes is not None else None
    output = served.predict(test_features, params=params)
    (output if isinstance(output, pd.DataFrame) else pd.DataFrame({"prediction": np.asarray(output)})).to_parquet(
        workdir / "test_output.parquet", index=False
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            permutation_table(RawRowsEstimator(served, classes), test_features, test_label, request).to_csv(
                workdir / "feature_importance.csv", index=False
            )
    except ValueError as error:  # e.g. ROC AUC on a test split holding one class only
        log.warning("permutation importance skipped: %s", error)
    (workdir / "done.json").write_text(
        json.dumps({"seconds": time.monotonic() - started, "python": sys.version.split()[0]})
    )


@click.command()
@click.option("--workdir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
def search(workdir: Path) -> None:
    """Fit auto-sklearn on WORKDIR/train.parquet and write the model and evaluation inputs there."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s", datefmt="%H:%M:%S", force=True
    )
    for name in ("mlflow", "distributed", "smac", "Client-EnsembleBuilder"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # This MLflow is older than the tracking store's schema; nothing here may reach the store.
    for variable in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        os.environ.pop(variable, None)
    # Anything MLflow writes on its own (a default ./mlruns) stays in the step's scratch folder.
    os.environ["MLFLOW_TRACKING_URI"] = (workdir.resolve() / "mlruns").as_uri()
    try:
        run_search(workdir.resolve())
    except Exception as error:  # noqa: BLE001 - the calling step turns this into its one-line error
        (workdir / "error.txt").write_text((str(error).strip().splitlines() or [type(error).__name__])[0][:500])
        raise


if __name__ == "__main__":
    search()
