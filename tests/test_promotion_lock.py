"""The promotion lock against a real (file-backed SQLite) MLflow store."""

import pytest
from mlflow import MlflowClient

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.promotion_lock import is_stale, lock_name, promotion_lock


def test_staleness_rules():
    assert not is_stale("RUNNING", 10)
    assert is_stale("FAILED", 10) and is_stale("FINISHED", 10) and is_stale(None, 10)
    assert is_stale("RUNNING", 10_000)


@pytest.fixture(scope="module")
def store_client(tmp_path_factory):
    root = tmp_path_factory.mktemp("lock-store")
    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", registry_uri=f"sqlite:///{root / 'mlflow.db'}")


def test_a_second_holder_waits_then_gives_up_while_the_first_runs(store_client):
    experiment = store_client.create_experiment("locks")
    first, second = (store_client.create_run(experiment).info.run_id for _ in range(2))
    with promotion_lock(store_client, "churn", first):
        assert store_client.get_registered_model(lock_name("churn")).tags["pipeline.lock_holder_run_id"] == first
        with pytest.raises(PipelineError, match=f"run {first} has held the promotion lock 'churn.promotion-lock'"):
            with promotion_lock(store_client, "churn", second, timeout_s=1):
                pass
    with promotion_lock(store_client, "churn", second):
        pass
    assert not store_client.search_registered_models(f"name = '{lock_name('churn')}'"), "released"


def test_a_lock_left_by_an_ended_run_is_broken(store_client):
    experiment = store_client.create_experiment("stale-locks")
    crashed, next_run = (store_client.create_run(experiment).info.run_id for _ in range(2))
    store_client.create_registered_model(lock_name("fraud"), tags={"pipeline.lock_holder_run_id": crashed})
    store_client.set_terminated(crashed, "FAILED")
    with promotion_lock(store_client, "fraud", next_run, timeout_s=5):
        assert store_client.get_registered_model(lock_name("fraud")).tags["pipeline.lock_holder_run_id"] == next_run
