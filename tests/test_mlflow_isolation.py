"""The tests' own isolation: MLflow keeps its tracking URI and active experiment for the whole
process (and writes them to the environment), so a test that sets them must leave nothing behind
for the next test of the same worker."""

from __future__ import annotations

import os

import mlflow
from conftest import MLFLOW_PROCESS_ENV, mlflow_process_state_restored


def mlflow_state() -> tuple:
    return (
        {name: os.environ.get(name) for name in MLFLOW_PROCESS_ENV},
        mlflow.tracking._tracking_service.utils._tracking_uri,
        mlflow.tracking.fluent._active_experiment_id,
    )


def test_a_test_that_sets_an_experiment_leaves_the_process_as_it_found_it(tmp_path):
    before = mlflow_state()
    with mlflow_process_state_restored():
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'first.db'}")
        experiment = mlflow.set_experiment("first")
        assert os.environ.get("MLFLOW_EXPERIMENT_ID") == experiment.experiment_id, "what MLflow does"
        mlflow.start_run()
    assert mlflow_state() == before and mlflow.active_run() is None
    # The next test's own store starts runs in its own experiment, not in one left behind.
    with mlflow_process_state_restored():
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'second.db'}")
        with mlflow.start_run() as run:
            assert run.info.experiment_id == "0"


def test_state_left_by_code_outside_the_helper_does_not_reach_a_test_inside_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "19")
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", "19")
    with mlflow_process_state_restored():
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'own.db'}")
        with mlflow.start_run() as run:
            assert run.info.experiment_id == "0"
    assert os.environ["MLFLOW_EXPERIMENT_ID"] == "19", "the caller's state is put back"
