"""One promotion at a time per registered model, across processes, machines and users.

Two `register` steps that judge and promote versions of the same model at once could both see the
same champion and both move the alias, leaving it on the worse version. So they queue:

- The queue is ONE registered model of the project's own bookkeeping, `QUEUE_MODEL`, described as
  such, for every model name. Each contender adds a version to it, a *ticket*, created in one
  request with its run id and the model's name as a tag. The registry numbers versions in a
  transaction and never reuses a number, so every ticket has a unique place; only tickets for the
  same model name count.
- Each contender renews a heartbeat on its ticket (a tag whose value changes) every `lease / 6`
  seconds, from a thread, while it waits and while it holds the lock.
- A ticket ahead stops counting when its run has ended (or no longer exists), when it was released,
  or when its heartbeat has not changed for a whole lease while this contender watched it (by its
  own clock: no clocks are compared across machines). A ticket whose run cannot be read still
  counts until its lease runs out: an error never means "ended".
- Before it goes past a ticket whose lease ran out, a contender revokes it (a tag naming itself).
  Just before it moves the alias, the holder renews its heartbeat and checks that its ticket is
  there and not revoked; a holder that lost its lease this way does not promote.
- Release deletes the contender's own ticket (or, without permission to delete, tags it released).

Why not a lock that is broken when stale by deleting it: "check stale, then delete by name" lets
two contenders both break it and both hold it. Why not PostgreSQL's advisory locks: the steps talk
to the tracking server over REST, not to its database. What a lease cannot rule out: a holder
frozen for a whole lease between its last check and the alias move (a few REST calls).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from tabular_pipeline.errors import PipelineError, one_line
from tabular_pipeline.registry.lock_queue import (
    LEGACY_LOCK_SUFFIX,
    LIVE_STATUSES,
    QUEUE_MODEL,
    TAG_HEARTBEAT,
    TAG_HOLDER_RUN,
    TAG_LOCK_MODEL,
    TAG_RELEASED,
    TAG_REVOKED,
    TICKET_ARTIFACT,
    TIMEOUT_ENV,
    Heartbeat,
    Ticket,
    Waiter,
    drop_ticket,
    ensure_queue,
    heartbeat_lease,
    heartbeat_value,
    lease_s,
    read_tickets,
    release_tickets,
    retrying,
    revoke_ticket,
    ticket_description,
    wait_timeout_s,
)

log = logging.getLogger("registry")


def tickets_ahead(tickets: list[Ticket], mine: int) -> list[Ticket]:
    """The tickets queued before ticket number `mine`, oldest first."""
    return sorted((t for t in tickets if t.version < mine), key=lambda t: t.version)


def holder_state(client, run_id: str) -> str:
    """ "live", "ended" or "unknown" for the run behind a ticket.

    Only a run the server reports as ended, or as not existing, is "ended"; any other failure to
    read it is "unknown", which blocks like a live holder until its lease runs out.
    """
    from mlflow.exceptions import MlflowException

    try:
        status = client.get_run(run_id).info.status
    except MlflowException as error:
        return "ended" if error.error_code == "RESOURCE_DOES_NOT_EXIST" else "unknown"
    return "live" if status in LIVE_STATUSES else "ended"


@dataclass
class LeaseWatch:
    """What one contender saw of the heartbeats ahead of it: each ticket's last value and since
    when (its own monotonic clock) that value has stood still."""

    lease_s: float
    seen: dict[int, tuple[str | None, float]] = field(default_factory=dict)

    def expired(self, ticket: Ticket, now: float) -> bool:
        """Record the ticket's heartbeat; True once it has not changed for a whole lease (the longer
        of this contender's and the one the ticket's holder announced, so a short lease set here
        never cuts off a holder that renews at its own, slower pace)."""
        value, since = self.seen.get(ticket.version, (None, None))
        if since is None or value != ticket.heartbeat:
            self.seen[ticket.version] = (ticket.heartbeat, now)
            return False
        return now - since >= max(self.lease_s, heartbeat_lease(ticket.heartbeat))


@dataclass
class HeldLock:
    """The lock as its holder sees it; `check_still_held` runs just before the alias moves."""

    client: object
    model_name: str
    run_id: str
    ticket: int
    heartbeat: Heartbeat

    def check_still_held(self) -> None:
        """Renew the heartbeat, then check the ticket is there and not revoked.

        Raises:
            PipelineError: in one line, when the lock cannot be proven this run's any more.
        """
        from mlflow.exceptions import MlflowException

        renewed = self.heartbeat.beat()
        try:
            tags = self.client.get_model_version(QUEUE_MODEL, str(self.ticket)).tags or {}
        except MlflowException as error:
            raise PipelineError(
                f"the promotion lock of '{self.model_name}' cannot be proven this run's (ticket {self.ticket}: "
                f"{one_line(error, 200)}); not promoting"
            ) from None
        if tags.get(TAG_REVOKED) or tags.get(TAG_RELEASED) == "true":
            raise PipelineError(
                f"the promotion lock of '{self.model_name}' was taken over by run {tags.get(TAG_REVOKED)} after this "
                "run's heartbeat stopped for a whole lease; not promoting"
            )
        if not renewed or time.monotonic() - self.heartbeat.renewed_at > self.heartbeat.lease / 2:
            raise PipelineError(
                f"the promotion lock of '{self.model_name}' cannot be proven this run's (its heartbeat could not be "
                "renewed); not promoting"
            )


@contextmanager
def promotion_lock(client, model_name: str, run_id: str, timeout_s: float | None = None):
    """Hold the promotion lock of `model_name` for the body of a `with` block; yields a `HeldLock`.

    Args:
        client: an `MlflowClient`.
        model_name: the registered model whose alias is about to move.
        run_id: the run taking the lock; its ticket counts until the run ends or its lease runs out.
        timeout_s: how long to wait for earlier tickets (default: `wait_timeout_s()`).

    Raises:
        PipelineError: in one line, when the lock cannot be taken before the deadline or at all.
    """
    waiter = Waiter(wait_timeout_s() if timeout_s is None else timeout_s)
    lease = lease_s()
    ensure_queue(client, waiter)
    ticket = retrying(
        lambda: client.create_model_version(
            QUEUE_MODEL,
            f"runs:/{run_id}/{TICKET_ARTIFACT}",
            run_id=run_id,
            tags={TAG_HOLDER_RUN: run_id, TAG_LOCK_MODEL: model_name, TAG_HEARTBEAT: heartbeat_value(0, lease)},
            description=ticket_description(model_name, run_id),
        ),
        f"queue for the promotion lock of '{model_name}'",
        waiter,
    )
    mine = int(ticket.version)
    heartbeat = Heartbeat(client, mine, lease).start()
    try:
        _wait_for_turn(client, model_name, mine, run_id, waiter, LeaseWatch(lease))
        remove_empty_legacy_lock(client, model_name)
        yield HeldLock(client, model_name, run_id, mine, heartbeat)
    finally:
        heartbeat.stop()
        release_tickets(client, model_name, run_id, mine)


def _wait_for_turn(client, model_name: str, mine: int, run_id: str, waiter: Waiter, watch: LeaseWatch) -> None:
    reported = None
    while True:
        # A retried request can leave this run a second ticket: its place is its earliest one (else
        # a run queued between the two would wait for it while it waits for that run), and it
        # never waits for itself.
        tickets = read_tickets(client, model_name, waiter)
        own = [t for t in tickets if t.run_id == run_id]
        if any(t.revoked_by for t in own if t.version == mine):
            raise PipelineError(
                f"run {next(t.revoked_by for t in own if t.version == mine)} went past this run's place in the "
                f"promotion queue of '{model_name}' after its heartbeat stood still for a whole lease; not promoting"
            )
        first = min([t.version for t in own] + [mine])
        ahead = [t for t in tickets_ahead(tickets, first) if t.run_id != run_id]
        now = time.monotonic()
        finished = [t for t in ahead if t.released or t.revoked_by]
        running = [t for t in ahead if t not in finished]
        states = {t.version: holder_state(client, t.run_id) for t in running}
        lapsed = [t for t in running if states[t.version] != "ended" and watch.expired(t, now)]
        blocking = [t for t in running if states[t.version] != "ended" and t not in lapsed]
        unrevoked = [t for t in lapsed if not revoke_ticket(client, t, run_id)]
        if not blocking and not unrevoked:
            for ticket in lapsed:
                log.warning(
                    "went past ticket %d of run %s in the promotion queue of '%s': its heartbeat stood still for %g s",
                    ticket.version,
                    ticket.run_id,
                    model_name,
                    watch.lease_s,
                )
            for ticket in ahead:  # done with: their numbers are never handed out again
                drop_ticket(client, ticket.version)
            return
        holder = (blocking or unrevoked)[0]
        if waiter.expired():
            state = {"unknown": "cannot be read", "live": "is still running"}.get(states[holder.version], "")
            if holder in unrevoked:
                state = "has not renewed its lease, but its ticket could not be revoked"
            raise PipelineError(
                f"run {holder.run_id} holds the promotion lock of '{model_name}' and {state} after "
                f"{waiter.timeout_s:g} s; expected it to finish first (set {TIMEOUT_ENV} to wait longer; a holder "
                f"whose process is gone is passed {watch.lease_s:g} s after its last heartbeat)"
            )
        if reported != holder.version:
            log.info("waiting for the promotion lock of '%s' (held by run %s)", model_name, holder.run_id)
            reported = holder.version
        waiter.sleep()


def remove_empty_legacy_lock(client, model_name: str) -> None:
    """Delete `<name>.promotion-lock`, the per-model queue of earlier releases, once it holds no
    ticket (best effort: it clutters the registry next to the user's models)."""
    from mlflow.exceptions import MlflowException

    legacy = f"{model_name}{LEGACY_LOCK_SUFFIX}"
    try:
        if client.search_registered_models(f"name = '{legacy}'") and not client.search_model_versions(
            f"name = '{legacy}'"
        ):
            client.delete_registered_model(legacy)
            log.info("removed '%s', the empty promotion lock of an earlier release", legacy)
    except MlflowException:
        pass
