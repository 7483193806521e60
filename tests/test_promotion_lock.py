"""The promotion lock against real MLflow stores: a file-backed SQLite store, and the session's
tracking server for the race between contenders (threads, each with its own run and client)."""

import threading
import time

import pytest
from mlflow import MlflowClient

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.registry.lock import TIMEOUT_ENV, Ticket, lock_name, promotion_lock, tickets_ahead, wait_timeout_s


def test_only_earlier_tickets_count_and_in_order():
    tickets = [Ticket(5, "e"), Ticket(2, "b"), Ticket(7, "g"), Ticket(3, "c")]
    assert [t.version for t in tickets_ahead(tickets, 5)] == [2, 3]
    assert tickets_ahead(tickets, 2) == []


def test_the_wait_is_configurable_and_checked(monkeypatch):
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert wait_timeout_s() == 600
    monkeypatch.setenv(TIMEOUT_ENV, "2.5")
    assert wait_timeout_s() == 2.5
    for bad in ("soon", "0", "-1", "inf", "nan"):
        monkeypatch.setenv(TIMEOUT_ENV, bad)
        with pytest.raises(PipelineError, match=f"{TIMEOUT_ENV} is '{bad}'; expected a positive number of seconds"):
            wait_timeout_s()


@pytest.fixture(scope="module")
def store_client(tmp_path_factory):
    root = tmp_path_factory.mktemp("lock-store")
    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", registry_uri=f"sqlite:///{root / 'mlflow.db'}")


def live_tickets(client, model):
    return sorted((int(v.version), v.run_id) for v in client.search_model_versions(f"name = '{lock_name(model)}'"))


def test_a_second_holder_waits_with_backoff_then_gives_up_and_never_touches_the_first(store_client):
    experiment = store_client.create_experiment("locks")
    first, second = (store_client.create_run(experiment).info.run_id for _ in range(2))
    with promotion_lock(store_client, "churn", first):
        assert live_tickets(store_client, "churn") == [(1, first)]
        started = time.monotonic()
        with pytest.raises(
            PipelineError,
            match=f"run {first} holds the promotion lock 'churn.promotion-lock' and is still running after 1 s",
        ):
            with promotion_lock(store_client, "churn", second, timeout_s=1):
                pytest.fail("the second contender must not get the lock")
        assert 0.9 < time.monotonic() - started < 10, "the wait is bounded by its deadline"
        assert live_tickets(store_client, "churn") == [(1, first)], "the waiter removed only its own ticket"
    assert live_tickets(store_client, "churn") == [], "released"
    with promotion_lock(store_client, "churn", second):
        assert live_tickets(store_client, "churn") == [(3, second)], "ticket numbers are never reused"


def test_a_ticket_left_by_an_ended_run_is_skipped_and_cleaned_up(store_client):
    experiment = store_client.create_experiment("stale-locks")
    crashed, next_run = (store_client.create_run(experiment).info.run_id for _ in range(2))
    store_client.create_registered_model(lock_name("fraud"))
    store_client.create_model_version(lock_name("fraud"), f"runs:/{crashed}/promotion-lock", run_id=crashed)
    store_client.set_terminated(crashed, "FAILED")
    with promotion_lock(store_client, "fraud", next_run, timeout_s=5):
        assert live_tickets(store_client, "fraud") == [(2, next_run)]


def test_a_holder_whose_run_cannot_be_read_is_not_taken_for_stale(store_client):
    """A lookup error must block like a live holder: the lock fails closed at its deadline."""
    experiment = store_client.create_experiment("unreadable-holder")
    waiting = store_client.create_run(experiment).info.run_id

    class FlakyRuns(MlflowClient):
        def get_run(self, _run_id):
            from mlflow.exceptions import MlflowException

            raise MlflowException("the server is busy", error_code="TEMPORARILY_UNAVAILABLE")

    flaky = FlakyRuns(tracking_uri=store_client.tracking_uri, registry_uri=store_client.tracking_uri)
    store_client.create_registered_model(lock_name("credit"))
    store_client.create_model_version(lock_name("credit"), "runs:/0123/promotion-lock", run_id="0123")
    with pytest.raises(
        PipelineError, match="run 0123 holds the promotion lock 'credit.promotion-lock' and cannot be read"
    ):
        with promotion_lock(flaky, "credit", waiting, timeout_s=1):
            pytest.fail("an unreadable holder was taken for stale")


def test_contenders_racing_for_a_stale_lock_never_hold_it_together(tracking_uri):
    """Several rounds of contenders, all starting at once after a crashed holder left its ticket:
    each must get the lock exactly once, and no two may hold it at the same time."""
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment(f"lock-race-{time.time_ns()}")
    model = f"race-{time.time_ns()}"
    contenders, rounds = 4, 3
    spans: list[tuple[float, float, str]] = []
    errors: list[str] = []

    def contend(start: threading.Barrier) -> None:
        own_client = MlflowClient(tracking_uri)
        run_id = own_client.create_run(experiment).info.run_id
        start.wait()
        try:
            with promotion_lock(own_client, model, run_id, timeout_s=120):
                entered = time.monotonic()
                time.sleep(0.3)
                spans.append((entered, time.monotonic(), run_id))
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(str(error))
        finally:
            own_client.set_terminated(run_id)

    for _ in range(rounds):
        crashed = client.create_run(experiment).info.run_id
        if not client.search_registered_models(f"name = '{lock_name(model)}'"):
            client.create_registered_model(lock_name(model))
        client.create_model_version(lock_name(model), f"runs:/{crashed}/promotion-lock", run_id=crashed)
        client.set_terminated(crashed, "FAILED")
        start = threading.Barrier(contenders)
        threads = [threading.Thread(target=contend, args=(start,)) for _ in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    assert not errors, errors
    assert len(spans) == contenders * rounds, "every contender got the lock once"
    ordered = sorted(spans)
    for (_, left_end, left), (right_start, _, right) in zip(ordered, ordered[1:], strict=False):
        assert right_start >= left_end, f"runs {left} and {right} held the lock at the same time"
    assert client.search_model_versions(f"name = '{lock_name(model)}'") == [], "every ticket is gone, stale ones too"


def test_a_duplicate_ticket_of_the_same_run_does_not_make_it_wait_for_itself(store_client):
    """MLflow's client retries a request whose answer was lost, so one run may hold two tickets."""
    experiment = store_client.create_experiment("duplicate-tickets")
    run_id = store_client.create_run(experiment).info.run_id
    store_client.create_registered_model(lock_name("dupes"))
    store_client.create_model_version(lock_name("dupes"), f"runs:/{run_id}/promotion-lock", run_id=run_id)
    with promotion_lock(store_client, "dupes", run_id, timeout_s=2):
        assert [run for _, run in live_tickets(store_client, "dupes")] == [run_id, run_id]
    assert live_tickets(store_client, "dupes") == [], "both of its tickets are released"


def test_a_run_with_a_duplicate_ticket_keeps_its_earliest_place(store_client):
    """Run A's lost-answer retry leaves it tickets 1 and 3 around run B's ticket 2: A goes first
    (its place is ticket 1) instead of waiting for B, which waits for A."""
    experiment = store_client.create_experiment("duplicate-around-another")
    first, second = (store_client.create_run(experiment).info.run_id for _ in range(2))
    store_client.create_registered_model(lock_name("around"))
    for run_id in (first, second):
        store_client.create_model_version(lock_name("around"), f"runs:/{run_id}/promotion-lock", run_id=run_id)
    with promotion_lock(store_client, "around", first, timeout_s=2):
        assert [run for _, run in live_tickets(store_client, "around")] == [first, second, first]
    assert [run for _, run in live_tickets(store_client, "around")] == [second], "only its own tickets go"
