"""One promotion at a time per registered model, across processes, machines and users.

Two `register` steps that judge and promote versions of the same model at once could both see the
same champion and both move the alias, leaving it on the worse version. So they queue:

- The queue is a registered model named `<name>.promotion-lock`. Each contender adds a model
  version to it, a *ticket*, created with its run id in one request. The registry numbers
  versions under a transaction and never reuses a number (deleted versions are kept, hidden), so
  every ticket has a unique place in the queue.
- A contender holds the lock once every ticket ahead of it belongs to a run that has ended (or no
  longer exists). A ticket whose run's state cannot be read is treated as live: an error never
  counts as "stale".
- Release deletes only the contender's own ticket, by its number. Tickets of ended runs are
  skipped, and the next holder deletes them when it may (they can never become live again).

Why not a lock that is broken when stale: "check stale, then delete by name" lets two contenders
both break it and both hold it. Why not PostgreSQL's advisory locks: the steps talk to the
tracking server over REST, not to its database.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass

from tabular_pipeline.errors import PipelineError, one_line

log = logging.getLogger("registry")
LOCK_SUFFIX = ".promotion-lock"
TICKET_ARTIFACT = "promotion-lock"
TAG_HOLDER_RUN = "pipeline.lock_holder_run_id"
TIMEOUT_ENV = "TABULAR_PIPELINE_LOCK_TIMEOUT_S"
WAIT_TIMEOUT_S = 600.0
FIRST_PAUSE_S, MAX_PAUSE_S = 0.2, 5.0
LIVE_STATUSES = ("RUNNING", "SCHEDULED")
# Errors that retrying cannot mend: the lock then fails closed at once.
FINAL_ERROR_CODES = ("PERMISSION_DENIED", "UNAUTHENTICATED", "INVALID_PARAMETER_VALUE")


def lock_name(model_name: str) -> str:
    """The registered-model name that holds the promotion queue of `model_name`."""
    return f"{model_name}{LOCK_SUFFIX}"


def wait_timeout_s() -> float:
    """How long to wait for the lock: `TABULAR_PIPELINE_LOCK_TIMEOUT_S`, or 600 s."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return WAIT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise PipelineError(f"{TIMEOUT_ENV} is {text!r}; expected a positive number of seconds")
    return value


@dataclass(frozen=True)
class Ticket:
    """One contender's place in the queue."""

    version: int
    run_id: str


def tickets_ahead(tickets: list[Ticket], mine: int) -> list[Ticket]:
    """The tickets queued before ticket number `mine`, oldest first."""
    return sorted((t for t in tickets if t.version < mine), key=lambda t: t.version)


def holder_state(client, run_id: str) -> str:
    """ "live", "ended" or "unknown" for the run behind a ticket.

    Only a run the server reports as ended, or as not existing, is "ended"; any other failure to
    read it is "unknown", which blocks like a live holder.
    """
    from mlflow.exceptions import MlflowException

    try:
        status = client.get_run(run_id).info.status
    except MlflowException as error:
        return "ended" if error.error_code == "RESOURCE_DOES_NOT_EXIST" else "unknown"
    return "live" if status in LIVE_STATUSES else "ended"


class _Waiter:
    """Backoff bounded by a deadline, shared by every retry of one acquisition."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.pause = FIRST_PAUSE_S

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def sleep(self) -> None:
        time.sleep(max(0.0, min(self.pause, self.deadline - time.monotonic())))
        self.pause = min(self.pause * 1.5, MAX_PAUSE_S)


def _retrying(action, what: str, waiter: _Waiter):
    """Run `action()` until it succeeds, retrying transient registry errors until the deadline."""
    from mlflow.exceptions import MlflowException

    while True:
        try:
            return action()
        except MlflowException as error:
            if error.error_code in FINAL_ERROR_CODES:
                raise PipelineError(
                    f"could not {what} ({error.error_code}: {one_line(error)}); expected EDIT permission on the lock"
                ) from None
            if waiter.expired():
                raise PipelineError(
                    f"could not {what} before the lock's deadline ({one_line(error)}); expected the registry to answer"
                ) from None
            log.info("could not %s (%s); trying again", what, one_line(error))
            waiter.sleep()


def _ensure_queue(client, name: str, waiter: _Waiter) -> None:
    from mlflow.exceptions import MlflowException

    def create():
        try:
            client.create_registered_model(name, description="Promotion queue: one version per waiting register run.")
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    _retrying(create, f"create the promotion lock '{name}'", waiter)


def _live_tickets(client, name: str, waiter: _Waiter) -> list[Ticket]:
    versions = _retrying(
        lambda: client.search_model_versions(f"name = '{name}'"), f"read the promotion lock '{name}'", waiter
    )
    return [Ticket(int(v.version), v.run_id or (v.tags or {}).get(TAG_HOLDER_RUN, "")) for v in versions]


def _drop_ticket(client, name: str, version: int) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_model_version(name, str(version))
        return True
    except MlflowException:
        return False


@contextmanager
def promotion_lock(client, model_name: str, run_id: str, timeout_s: float | None = None):
    """Hold the promotion lock of `model_name` for the body of a `with` block.

    Args:
        client: an `MlflowClient`.
        model_name: the registered model whose alias is about to move.
        run_id: the run taking the lock; its ticket counts until the run ends.
        timeout_s: how long to wait for earlier tickets (default: `wait_timeout_s()`).

    Raises:
        PipelineError: in one line, when the lock cannot be taken before the deadline or at all.
    """
    name = lock_name(model_name)
    waiter = _Waiter(wait_timeout_s() if timeout_s is None else timeout_s)
    _ensure_queue(client, name, waiter)
    source = f"runs:/{run_id}/{TICKET_ARTIFACT}"
    ticket = _retrying(
        lambda: client.create_model_version(name, source, run_id=run_id, tags={TAG_HOLDER_RUN: run_id}),
        f"queue for the promotion lock '{name}'",
        waiter,
    )
    mine = int(ticket.version)
    try:
        _wait_for_turn(client, name, mine, run_id, waiter)
    except BaseException:
        _release(client, name, run_id, mine)
        raise
    try:
        yield
    finally:
        _release(client, name, run_id, mine)


def _release(client, name: str, run_id: str, mine: int) -> None:
    """Delete this run's ticket, and any duplicate a retried request created for it."""
    from mlflow.exceptions import MlflowException

    try:
        own = {t.version for t in _live_tickets(client, name, _Waiter(30)) if t.run_id == run_id} | {mine}
    except (MlflowException, PipelineError):
        own = {mine}
    for version in sorted(own):
        if not _drop_ticket(client, name, version):
            log.warning(
                "could not release the promotion lock '%s' (ticket %d); it counts until run %s ends",
                name,
                version,
                run_id,
            )


def _wait_for_turn(client, name: str, mine: int, run_id: str, waiter: _Waiter) -> None:
    reported = None
    while True:
        # A retried request can leave this run a second ticket: its place is its earliest one (else
        # a run queued between the two would wait for it while it waits for that run), and it
        # never waits for itself.
        live = _live_tickets(client, name, waiter)
        first = min([t.version for t in live if t.run_id == run_id] + [mine])
        ahead = [t for t in tickets_ahead(live, first) if t.run_id != run_id]
        states = {ticket.version: holder_state(client, ticket.run_id) for ticket in ahead}
        blocking = [ticket for ticket in ahead if states[ticket.version] != "ended"]
        if not blocking:
            for ticket in ahead:  # left by ended runs; their numbers are never handed out again
                _drop_ticket(client, name, ticket.version)
            return
        holder = blocking[0]
        if waiter.expired():
            state = "cannot be read" if states[holder.version] == "unknown" else "is still running"
            raise PipelineError(
                f"run {holder.run_id} holds the promotion lock '{name}' and {state} after {waiter.timeout_s:g} s; "
                f"expected it to finish first (set {TIMEOUT_ENV} to wait longer; if its process is gone, end that run "
                f"or delete version {holder.version} of '{name}')"
            )
        if reported != holder.version:
            log.info("waiting for the promotion lock '%s' (held by run %s)", name, holder.run_id)
            reported = holder.version
        waiter.sleep()
