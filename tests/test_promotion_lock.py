"""The promotion lock against real MLflow stores: a file-backed SQLite store, and the session's
tracking server for the race between contenders (threads, each with its own run and client)."""

import threading
import time

import pytest
from mlflow import MlflowClient

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.registry.lock import LeaseWatch, promotion_lock, tickets_ahead
from tabular_pipeline.registry.lock_queue import (
    LEASE_ENV,
    QUEUE_MODEL,
    TAG_HEARTBEAT,
    TAG_LOCK_MODEL,
    TAG_REVOKED,
    TIMEOUT_ENV,
    Ticket,
    lease_s,
    queue_filter,
    wait_timeout_s,
)


def test_only_earlier_tickets_count_and_in_order():
    tickets = [Ticket(5, "e"), Ticket(2, "b"), Ticket(7, "g"), Ticket(3, "c")]
    assert [t.version for t in tickets_ahead(tickets, 5)] == [2, 3]
    assert tickets_ahead(tickets, 2) == []


def test_the_wait_and_the_lease_are_configurable_and_checked(monkeypatch):
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    monkeypatch.delenv(LEASE_ENV, raising=False)
    assert wait_timeout_s() == 600 and lease_s() == 120
    monkeypatch.setenv(TIMEOUT_ENV, "2.5")
    assert wait_timeout_s() == 2.5
    for name, read in ((TIMEOUT_ENV, wait_timeout_s), (LEASE_ENV, lease_s)):
        for bad in ("soon", "0", "-1", "inf", "nan"):
            monkeypatch.setenv(name, bad)
            with pytest.raises(PipelineError, match=f"{name} is '{bad}'; expected a positive number of seconds"):
                read()
        monkeypatch.delenv(name)


def test_a_lease_runs_out_only_after_a_whole_lease_without_a_new_heartbeat():
    watch = LeaseWatch(lease_s=10)
    assert not watch.expired(Ticket(1, "a", "1@100"), now=0.0)
    assert not watch.expired(Ticket(1, "a", "1@100"), now=9.9)
    assert not watch.expired(Ticket(1, "a", "2@120"), now=10.5), "a new heartbeat starts the lease again"
    assert not watch.expired(Ticket(1, "a", "2@120"), now=20.4)
    assert watch.expired(Ticket(1, "a", "2@120"), now=20.5)
    assert not watch.expired(Ticket(2, "b", None), now=100.0), "a ticket first seen now is watched from now"


@pytest.fixture(scope="module")
def store_client(tmp_path_factory):
    root = tmp_path_factory.mktemp("lock-store")
    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", registry_uri=f"sqlite:///{root / 'mlflow.db'}")


def live_tickets(client, model):
    return sorted((int(v.version), v.run_id) for v in client.search_model_versions(queue_filter(model)))


def add_ticket(client, model, run_id, heartbeat="1@0"):
    """A ticket as a contender creates it (here for a contender that then stops: killed, or ended)."""
    if not client.search_registered_models(f"name = '{QUEUE_MODEL}'"):
        client.create_registered_model(QUEUE_MODEL)
    tags = {TAG_LOCK_MODEL: model, TAG_HEARTBEAT: heartbeat}
    return client.create_model_version(QUEUE_MODEL, f"runs:/{run_id}/promotion-lock", run_id=run_id, tags=tags)


def test_a_second_holder_waits_with_backoff_then_gives_up_and_never_touches_the_first(store_client):
    experiment = store_client.create_experiment("locks")
    first, second = (store_client.create_run(experiment).info.run_id for _ in range(2))
    with promotion_lock(store_client, "churn", first):
        [(ticket, _)] = live_tickets(store_client, "churn")
        started = time.monotonic()
        with pytest.raises(
            PipelineError,
            match=f"run {first} holds the promotion lock of 'churn' and is still running after 1 s",
        ):
            with promotion_lock(store_client, "churn", second, timeout_s=1):
                pytest.fail("the second contender must not get the lock")
        assert 0.9 < time.monotonic() - started < 10, "the wait is bounded by its deadline"
        assert live_tickets(store_client, "churn") == [(ticket, first)], "the waiter removed only its own ticket"
    assert live_tickets(store_client, "churn") == [], "released"
    with promotion_lock(store_client, "churn", second):
        assert live_tickets(store_client, "churn")[0][0] > ticket + 1, "ticket numbers are never reused"


def test_one_queue_serves_every_model_and_models_do_not_wait_for_each_other(store_client):
    """The registry holds one bookkeeping model for all names, not one lock model per name."""
    experiment = store_client.create_experiment("many-models")
    one, two = (store_client.create_run(experiment).info.run_id for _ in range(2))
    with promotion_lock(store_client, "alpha", one), promotion_lock(store_client, "beta", two, timeout_s=2):
        assert [run for _, run in live_tickets(store_client, "alpha")] == [one]
        assert [run for _, run in live_tickets(store_client, "beta")] == [two]
    names = {model.name for model in store_client.search_registered_models()}
    assert QUEUE_MODEL in names and not any(name.endswith(".promotion-lock") for name in names)


def test_a_ticket_left_by_an_ended_run_is_skipped_and_cleaned_up(store_client):
    experiment = store_client.create_experiment("stale-locks")
    crashed, next_run = (store_client.create_run(experiment).info.run_id for _ in range(2))
    add_ticket(store_client, "fraud", crashed)
    store_client.set_terminated(crashed, "FAILED")
    with promotion_lock(store_client, "fraud", next_run, timeout_s=5):
        assert [run for _, run in live_tickets(store_client, "fraud")] == [next_run]


def test_a_holder_whose_heartbeat_stopped_is_passed_after_its_lease_and_revoked(store_client, monkeypatch):
    """Its run is still RUNNING (its process was killed): only the lease tells it is gone. The one
    that goes past revokes its ticket, so the old holder cannot promote if it ever wakes up."""
    monkeypatch.setenv(LEASE_ENV, "2")
    experiment = store_client.create_experiment("dead-holder")
    dead, waiting = (store_client.create_run(experiment).info.run_id for _ in range(2))
    add_ticket(store_client, "loans", dead)
    started = time.monotonic()
    with promotion_lock(store_client, "loans", waiting, timeout_s=30) as held:
        waited = time.monotonic() - started
        held.check_still_held()
    assert 2 <= waited < 15, waited
    assert store_client.get_run(dead).info.status == "RUNNING", "nobody ended the dead holder's run"
    assert live_tickets(store_client, "loans") == [], "the revoked ticket was removed too"


def test_a_lease_is_the_longer_of_the_waiters_and_the_one_the_holder_announced():
    watch = LeaseWatch(lease_s=10)
    slow_holder = Ticket(1, "a", "1@100/60")
    assert not watch.expired(slow_holder, now=0.0)
    assert not watch.expired(slow_holder, now=30.0), "the holder renews every 10 s of its own 60 s lease"
    assert watch.expired(slow_holder, now=60.0)
    assert watch.expired(Ticket(2, "b", "1@100/5"), now=0.0) is False
    assert watch.expired(Ticket(2, "b", "1@100/5"), now=10.0), "never shorter than the waiter's own"


def test_a_ticket_whose_tags_are_not_written_yet_still_counts(store_client, monkeypatch):
    """A file store writes a version, then its tags: a ticket seen in between says its model only
    in its description, or not at all. One naming another model is not waited for; one naming
    none is waited for by every model, until its lease runs out."""
    monkeypatch.setenv(LEASE_ENV, "2")
    experiment = store_client.create_experiment("untagged-tickets")
    other, unknown, waiting = (store_client.create_run(experiment).info.run_id for _ in range(3))
    add_ticket(store_client, "fraud", other)  # the queue exists
    store_client.delete_model_version(QUEUE_MODEL, live_tickets(store_client, "fraud")[0][0])
    store_client.create_model_version(
        QUEUE_MODEL, f"runs:/{other}/promotion-lock", run_id=other,
        description=f"Promotion lock ticket of 'fraud' for run {other}",
    )  # fmt: skip
    started = time.monotonic()
    with promotion_lock(store_client, "churn", waiting, timeout_s=30):
        assert time.monotonic() - started < 2, "a ticket of another model is not waited for"
    store_client.create_model_version(QUEUE_MODEL, f"runs:/{unknown}/promotion-lock", run_id=unknown)
    started = time.monotonic()
    with promotion_lock(store_client, "churn", waiting, timeout_s=30):
        waited = time.monotonic() - started
    assert 2 <= waited < 15, "a ticket naming no model is waited for, for a whole lease"


def test_a_holder_that_lost_its_lease_does_not_promote(store_client, monkeypatch):
    monkeypatch.setenv(LEASE_ENV, "60")
    experiment = store_client.create_experiment("lost-lease")
    holder, other = (store_client.create_run(experiment).info.run_id for _ in range(2))
    with promotion_lock(store_client, "cards", holder) as held:
        [(ticket, _)] = live_tickets(store_client, "cards")
        store_client.set_model_version_tag(QUEUE_MODEL, str(ticket), TAG_REVOKED, other)
        with pytest.raises(PipelineError, match=f"taken over by run {other} .*; not promoting"):
            held.check_still_held()


def test_a_holder_whose_run_cannot_be_read_blocks_until_its_lease_runs_out(store_client):
    """A lookup error must block like a live holder: the lock fails closed at its deadline."""
    experiment = store_client.create_experiment("unreadable-holder")
    waiting = store_client.create_run(experiment).info.run_id

    class FlakyRuns(MlflowClient):
        def get_run(self, _run_id):
            from mlflow.exceptions import MlflowException

            raise MlflowException("the server is busy", error_code="TEMPORARILY_UNAVAILABLE")

    flaky = FlakyRuns(tracking_uri=store_client.tracking_uri, registry_uri=store_client.tracking_uri)
    add_ticket(store_client, "credit", "0123")
    with pytest.raises(PipelineError, match="run 0123 holds the promotion lock of 'credit' and cannot be read"):
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
            with promotion_lock(own_client, model, run_id, timeout_s=120) as held:
                entered = time.monotonic()
                time.sleep(0.3)
                held.check_still_held()
                spans.append((entered, time.monotonic(), run_id))
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(str(error))
        finally:
            own_client.set_terminated(run_id)

    for _ in range(rounds):
        crashed = client.create_run(experiment).info.run_id
        add_ticket(client, model, crashed)
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
    assert client.search_model_versions(queue_filter(model)) == [], "every ticket is gone, stale ones too"


def test_a_duplicate_ticket_of_the_same_run_does_not_make_it_wait_for_itself(store_client):
    """MLflow's client retries a request whose answer was lost, so one run may hold two tickets."""
    experiment = store_client.create_experiment("duplicate-tickets")
    run_id = store_client.create_run(experiment).info.run_id
    add_ticket(store_client, "dupes", run_id)
    with promotion_lock(store_client, "dupes", run_id, timeout_s=2):
        assert [run for _, run in live_tickets(store_client, "dupes")] == [run_id, run_id]
    assert live_tickets(store_client, "dupes") == [], "both of its tickets are released"


def test_a_run_with_a_duplicate_ticket_keeps_its_earliest_place(store_client):
    """Run A's lost-answer retry leaves it tickets 1 and 3 around run B's ticket 2: A goes first
    (its place is ticket 1) instead of waiting for B, which waits for A."""
    experiment = store_client.create_experiment("duplicate-around-another")
    first, second = (store_client.create_run(experiment).info.run_id for _ in range(2))
    for run_id in (first, second):
        add_ticket(store_client, "around", run_id)
    with promotion_lock(store_client, "around", first, timeout_s=2):
        assert [run for _, run in live_tickets(store_client, "around")] == [first, second, first]
    assert [run for _, run in live_tickets(store_client, "around")] == [second], "only its own tickets go"
