"""One promotion at a time per registered model, across processes and machines.

Two `register` steps that judge and promote versions of the same model at once could both see the
same champion and both move the alias, leaving it on the worse version. The lock is a registered
model named `<name>.promotion-lock`: the registry refuses a second one with the same name on every
backend (a unique key), so creating it is an atomic test-and-set. It is deleted on release; a lock
whose holder run has ended, or that is older than `STALE_AFTER_S`, is broken.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

from tabular_pipeline.errors import PipelineError

log = logging.getLogger("registry")
LOCK_SUFFIX = ".promotion-lock"
TAG_HOLDER_RUN = "pipeline.lock_holder_run_id"
STALE_AFTER_S = 900.0
WAIT_TIMEOUT_S = 600.0


def lock_name(model_name: str) -> str:
    """The registered-model name that serves as the lock for `model_name`."""
    return f"{model_name}{LOCK_SUFFIX}"


def is_stale(holder_status: str | None, age_s: float, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether a lock may be broken: its holder run has ended (or is gone), or it is too old."""
    return holder_status not in ("RUNNING", "SCHEDULED") or age_s > stale_after_s


def _holder_status(client, holder_run_id: str | None) -> str | None:
    from mlflow.exceptions import MlflowException

    if not holder_run_id:
        return None
    try:
        return client.get_run(holder_run_id).info.status
    except MlflowException:
        return None


@contextmanager
def promotion_lock(client, model_name: str, run_id: str, timeout_s: float = WAIT_TIMEOUT_S):
    """Hold the promotion lock of `model_name` for the body of a `with` block.

    Args:
        client: an `MlflowClient`.
        model_name: the registered model whose alias is about to move.
        run_id: the run taking the lock (a lock held by an ended run is broken).
        timeout_s: how long to wait for another holder before giving up.
    """
    from mlflow.exceptions import MlflowException

    name, deadline, pause = lock_name(model_name), time.monotonic() + timeout_s, 0.5
    description = f"Promotion lock of '{model_name}', held by run {run_id}; deleted when it is done."
    while True:
        try:
            client.create_registered_model(name, tags={TAG_HOLDER_RUN: run_id}, description=description)
            break
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise PipelineError(f"could not take the promotion lock '{name}' ({error.message.splitlines()[0][:200]})") from None
        try:
            held = client.get_registered_model(name)
        except MlflowException:
            continue  # released meanwhile
        age_s = time.time() - held.creation_timestamp / 1000
        holder = held.tags.get(TAG_HOLDER_RUN)
        if is_stale(_holder_status(client, holder), age_s):
            log.warning("breaking the promotion lock '%s' left by run %s (%.0f s old)", name, holder, age_s)
            try:
                client.delete_registered_model(name)
            except MlflowException:
                pass
            continue
        if time.monotonic() > deadline:
            raise PipelineError(
                f"run {holder} has held the promotion lock '{name}' for {age_s:.0f} s; expected it within {timeout_s:.0f} s "
                f"(delete that registered model if its run is gone)"
            )
        log.info("waiting for the promotion lock '%s' (held by run %s)", name, holder)
        time.sleep(pause)
        pause = min(pause * 2, 10.0)
    try:
        yield
    finally:
        try:
            client.delete_registered_model(name)
        except MlflowException:
            log.warning("could not release the promotion lock '%s'; the next register breaks it once this run has ended", name)
