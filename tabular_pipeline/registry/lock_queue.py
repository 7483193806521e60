"""The promotion queue's bookkeeping (`registry.lock` uses it): one registered model for every name,
its tickets read, created, renewed, revoked and released, each registry call retried until a deadline."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass

from tabular_pipeline.errors import PipelineError, one_line

log = logging.getLogger("registry")

QUEUE_MODEL = "tabular-pipeline.promotion-queue"
QUEUE_DESCRIPTION = (
    "Bookkeeping of the tabular-pipeline MLflow project, not a model: one version (a ticket) per register step "
    "waiting for or holding the promotion lock of a registered model (tag pipeline.lock_model). Safe to delete "
    "while no register step runs."
)
LEGACY_LOCK_SUFFIX = ".promotion-lock"
TICKET_ARTIFACT = "promotion-lock"
TAG_LOCK_MODEL = "pipeline.lock_model"
TAG_HOLDER_RUN = "pipeline.lock_holder_run_id"
TAG_HEARTBEAT = "pipeline.lock_heartbeat"
TAG_RELEASED = "pipeline.lock_released"
TAG_REVOKED = "pipeline.lock_revoked_by"
TIMEOUT_ENV = "TABULAR_PIPELINE_LOCK_TIMEOUT_S"
LEASE_ENV = "TABULAR_PIPELINE_LOCK_LEASE_S"
WAIT_TIMEOUT_S = 600.0
LEASE_S = 120.0
FIRST_PAUSE_S, MAX_PAUSE_S = 0.2, 5.0
LIVE_STATUSES = ("RUNNING", "SCHEDULED")
# Errors that retrying cannot mend: the lock then fails closed at once.
FINAL_ERROR_CODES = ("PERMISSION_DENIED", "UNAUTHENTICATED", "INVALID_PARAMETER_VALUE")


def seconds_from_env(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable `name`, or `default` when unset."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise PipelineError(f"{name} is {text!r}; expected a positive number of seconds")
    return value


def wait_timeout_s() -> float:
    """How long to wait for the lock: `TABULAR_PIPELINE_LOCK_TIMEOUT_S`, or 600 s."""
    return seconds_from_env(TIMEOUT_ENV, WAIT_TIMEOUT_S)


def lease_s() -> float:
    """How long a ticket's heartbeat may stand still before others go past it:
    `TABULAR_PIPELINE_LOCK_LEASE_S`, or 120 s."""
    return seconds_from_env(LEASE_ENV, LEASE_S)


@dataclass(frozen=True)
class Ticket:
    """One contender's place in the queue, as the registry last showed it."""

    version: int
    run_id: str
    heartbeat: str | None = None
    released: bool = False
    revoked_by: str | None = None


class Waiter:
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


def retrying(action, what: str, waiter: Waiter):
    """Run `action()` until it succeeds, retrying transient registry errors until the deadline."""
    from mlflow.exceptions import MlflowException

    while True:
        try:
            return action()
        except MlflowException as error:
            if error.error_code in FINAL_ERROR_CODES:
                raise PipelineError(
                    f"could not {what} ({error.error_code}: {one_line(error)}); expected EDIT permission on "
                    f"'{QUEUE_MODEL}'"
                ) from None
            if waiter.expired():
                raise PipelineError(
                    f"could not {what} before the lock's deadline ({one_line(error)}); expected the registry to answer"
                ) from None
            log.info("could not %s (%s); trying again", what, one_line(error))
            waiter.sleep()


def ensure_queue(client, waiter: Waiter) -> None:
    from mlflow.exceptions import MlflowException

    def create():
        try:
            client.create_registered_model(
                QUEUE_MODEL, tags={"pipeline.bookkeeping": "promotion-queue"}, description=QUEUE_DESCRIPTION
            )
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    retrying(create, f"create the promotion queue '{QUEUE_MODEL}'", waiter)


def queue_filter(model_name: str) -> str:
    """A search filter for the tagged tickets of one model, for a person (or a test) looking at the
    queue; the lock itself reads every ticket (`read_tickets`). Names never hold quotes."""
    return f"name = '{QUEUE_MODEL}' and tags.`{TAG_LOCK_MODEL}` = '{model_name}'"


def ticket_description(model_name: str, run_id: str) -> str:
    """A ticket's description: written with the version itself, where a file store writes tags later."""
    return f"Promotion lock ticket of '{model_name}' for run {run_id}"


def ticket_model(version) -> str | None:
    """The model a ticket queues for: its tag, else its description; None when neither says yet."""
    tagged = (version.tags or {}).get(TAG_LOCK_MODEL)
    if tagged:
        return tagged
    match = re.fullmatch(r"Promotion lock ticket of '(.+)' for run \S+", version.description or "")
    return match.group(1) if match else None


def heartbeat_value(beats: int, lease: float) -> str:
    """A heartbeat tag: its count, the wall time (for people reading it) and the holder's lease."""
    return f"{beats}@{time.time():.0f}/{lease:g}"


def heartbeat_lease(value: str | None) -> float:
    """The lease a heartbeat tag announces (0 when it announces none)."""
    try:
        return float((value or "").rpartition("/")[2]) if "/" in (value or "") else 0.0
    except ValueError:
        return 0.0


def read_tickets(client, model_name: str, waiter: Waiter) -> list[Ticket]:
    """Every ticket of `model_name` in the queue, released and revoked ones included, and every
    ticket that does not say yet which model it is for (on a file store a version's tags are written
    after the version): those count for every model, so no contender ever misses one ahead of it."""
    versions = retrying(
        lambda: client.search_model_versions(f"name = '{QUEUE_MODEL}'"),
        f"read the promotion queue '{QUEUE_MODEL}'",
        waiter,
    )
    tickets = []
    for version in versions:
        if ticket_model(version) not in (model_name, None):
            continue
        tags = version.tags or {}
        tickets.append(
            Ticket(
                int(version.version),
                version.run_id or tags.get(TAG_HOLDER_RUN, ""),
                tags.get(TAG_HEARTBEAT),
                tags.get(TAG_RELEASED) == "true",
                tags.get(TAG_REVOKED),
            )
        )
    return tickets


class Heartbeat:
    """Renews a ticket's heartbeat tag every `lease / 6` seconds on a daemon thread."""

    def __init__(self, client, version: int, lease: float):
        self.client, self.version, self.lease = client, str(version), lease
        self.beats, self.renewed_at = 0, time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="promotion-lock-heartbeat", daemon=True)

    def beat(self) -> bool:
        """Renew now; True when the registry took it."""
        from mlflow.exceptions import MlflowException

        self.beats += 1
        try:
            self.client.set_model_version_tag(
                QUEUE_MODEL, self.version, TAG_HEARTBEAT, heartbeat_value(self.beats, self.lease)
            )
        except MlflowException:
            return False
        self.renewed_at = time.monotonic()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.lease / 6):
            if not self.beat():
                log.info("could not renew the promotion lock's heartbeat; trying again")

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def release_tickets(client, model_name: str, run_id: str, mine: int) -> None:
    """Delete this run's ticket, and any duplicate a retried request created for it; without
    permission to delete, tag them released."""
    from mlflow.exceptions import MlflowException

    try:
        own = {t.version for t in read_tickets(client, model_name, Waiter(30)) if t.run_id == run_id} | {mine}
    except (MlflowException, PipelineError):
        own = {mine}
    for version in sorted(own):
        if drop_ticket(client, version):
            continue
        try:
            client.set_model_version_tag(QUEUE_MODEL, str(version), TAG_RELEASED, "true")
        except MlflowException:
            log.warning(
                "could not release the promotion lock of '%s' (ticket %d); it counts until run %s ends or its lease "
                "runs out",
                model_name,
                version,
                run_id,
            )


def drop_ticket(client, version: int) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_model_version(QUEUE_MODEL, str(version))
        return True
    except MlflowException:
        return False


def revoke_ticket(client, ticket: Ticket, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.set_model_version_tag(QUEUE_MODEL, str(ticket.version), TAG_REVOKED, run_id)
        return True
    except MlflowException:
        return False
