"""Registering a model version and pointing an alias (and the matching legacy stage) at it."""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Callable
from contextlib import contextmanager, redirect_stderr

from tabular_pipeline.errors import PipelineError, one_line
from tabular_pipeline.registry.lock_queue import QUEUE_MODEL
from tabular_pipeline.registry.model_uris import parse_model_uri
from tabular_pipeline.registry.promotion import promote, promotion_state, restore_promotion

log = logging.getLogger("registry")

TAG_SOURCE_MODEL_URI = "pipeline.model_uri"
# Characters the registry refuses, plus quotes: names go into search filters such as `name = '...'`.
_FORBIDDEN_NAME_CHARACTERS = "/:%?#@\\'\"`"
_ALIAS_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,254}$")
# The registry's limit on a registered model's name.
MAX_MODEL_NAME_LENGTH = 256


def validate_model_name(name: str) -> str:
    """Return the stripped name if the registry will accept it, else raise a clear error."""
    stripped = name.strip()
    if not stripped:
        raise PipelineError("model_name is empty; expected a registered model name such as 'churn-model'")
    if len(stripped) > MAX_MODEL_NAME_LENGTH:
        raise PipelineError(f"model_name is {len(stripped)} characters; expected at most {MAX_MODEL_NAME_LENGTH}")
    if stripped == QUEUE_MODEL or stripped.endswith(".promotion-lock"):
        raise PipelineError(f"model_name {stripped!r} names the promotion queue; expected the model's own name")
    bad = sorted({c for c in stripped if c in _FORBIDDEN_NAME_CHARACTERS or not c.isprintable()})
    if bad:
        raise PipelineError(
            f"model_name {stripped!r} contains {''.join(bad)!r}; expected letters, digits, spaces, '.', '_' or '-' "
            "(none of / : % ? # @ \\ ' \" `)"
        )
    return stripped


def validate_alias(alias: str) -> str:
    """Return the alias if MLflow accepts it (not `latest`, not like a version `v3`)."""
    if not _ALIAS_PATTERN.match(alias) or alias.lower() == "latest" or re.match(r"^[vV]\d+$", alias):
        raise PipelineError(
            f"alias {alias!r} is not valid; expected letters, digits, '_' or '-', not 'latest' or 'v<number>'"
        )
    return alias


def check_model_exists(client, model_uri: str) -> None:
    """Fail fast, before anything is registered, when `model_uri` points at nothing."""
    from mlflow.exceptions import MlflowException

    kind, identifier, path = parse_model_uri(model_uri)
    try:
        if kind == "logged":
            client.get_logged_model(identifier)
        elif kind == "run":
            client.get_run(identifier)
            if not client.list_artifacts(identifier, path):
                experiment_id = client.get_run(identifier).info.experiment_id
                models = client.search_logged_models(
                    [experiment_id], filter_string=f"source_run_id = '{identifier}' AND name = '{path}'"
                )
                if not models:
                    raise PipelineError(
                        f"run {identifier} has no model at '{path}'; expected the model URI that train_basic logged"
                    )
    except MlflowException as error:
        reason = one_line(error, 200)
        raise PipelineError(
            f"model {model_uri} does not exist ({reason}); expected the model URI that train_basic logged"
        ) from None


def find_existing_version(client, name: str, model_uri: str):
    """The version of `name` already registered from `model_uri`, if any (keeps reruns idempotent)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as error:
        raise PipelineError(
            f"could not list the versions of '{name}' ({one_line(error)}); expected the registry to answer"
        ) from None
    matches = [v for v in versions if (v.tags or {}).get(TAG_SOURCE_MODEL_URI) == model_uri]
    return max(matches, key=lambda v: int(v.version)) if matches else None


def create_registered_model_if_missing(client, name: str) -> bool:
    """Create the registered model unless it exists; True only when this call created it.

    Creation is atomic in the registry, so "created here" is proven, not guessed from a lookup
    that may fail for other reasons; only such a model may be removed again on a failure.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
        return True
    except MlflowException as error:
        if error.error_code == "RESOURCE_ALREADY_EXISTS":
            return False
        raise PipelineError(
            f"could not create the registered model '{name}' ({one_line(error)}); expected permission to create it"
        ) from None


def drop_if_empty(client, name: str) -> None:
    """Delete a registered model that holds no version; called only for a model this run created."""
    from mlflow.exceptions import MlflowException

    try:
        if not client.search_model_versions(f"name = '{name}'"):
            client.delete_registered_model(name)
    except MlflowException:
        log.warning("could not remove the empty registered model '%s'", name)


Judge = Callable[[str], tuple[bool, dict[str, str]]]


def register_and_promote(
    client,
    model_uri: str,
    name: str,
    alias: str,
    judge: Judge | None = None,
    extra_tags: dict[str, str] | None = None,
    confirm: Callable[[], None] | None = None,
):
    """Register `model_uri` under `name`, ask `judge` whether to promote it, and promote it if so.

    A rerun with the same model URI reuses its version instead of registering a duplicate. If
    anything fails after a new version was created, that version is deleted again. A version the
    judge rejects stays registered, with the judge's tags, but gets no alias and no stage.

    Args:
        client: an `MlflowClient`.
        model_uri: the logged model (``models:/m-...`` or ``runs:/<id>/model``).
        name: the registered model name.
        alias: the alias to point at the version.
        judge: given the version number, returns (promote?, tags to record); None promotes.
        extra_tags: tags to put on the version (e.g. lineage).
        confirm: called just before the alias moves; raising there (the promotion lock is no longer
            this run's) rolls back as any other failure does.

    Returns:
        (the `ModelVersion`, whether it was newly created, whether it was promoted).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    check_model_exists(client, model_uri)
    model_created = create_registered_model_if_missing(client, name)
    existing = None if model_created else find_existing_version(client, name, model_uri)
    created = existing is None
    try:
        if existing is None:
            with quiet_registration_notes():
                version = mlflow.register_model(
                    model_uri,
                    name,
                    await_registration_for=300,
                    tags={TAG_SOURCE_MODEL_URI: model_uri, **(extra_tags or {})},
                )
        else:
            version = existing
            log.info("model %s is already version %s of '%s'; reusing it", model_uri, version.version, name)
    except MlflowException as error:
        if model_created:
            drop_if_empty(client, name)
        raise PipelineError(
            f"could not register {model_uri} as '{name}' ({one_line(error)}); expected EDIT permission on '{name}'"
        ) from None
    state = None
    try:
        if version.status != "READY":
            raise PipelineError(
                f"version {version.version} of '{name}' is {version.status}; expected READY after registration"
            )
        promoted, tags = judge(version.version) if judge else (True, {})
        for key, value in tags.items():
            client.set_model_version_tag(name, version.version, key, value)
        if promoted:
            if confirm:
                confirm()
            state = promotion_state(client, name, version.version, alias)
            promote(client, name, version.version, alias)
    except BaseException as error:
        # Any interruption (an MLflow error, a bad tag, SIGTERM, Ctrl-C) puts things back first.
        if state is not None:
            # A promotion cut off half way must not leave the alias moved (or, once the new version
            # is deleted below, gone) and the previous holder archived.
            restore_promotion(client, name, alias, state)
        if created:
            # Never leave a half-registered version behind: it would look usable but carry no alias.
            try:
                client.delete_model_version(name, version.version)
            except MlflowException:
                log.warning("could not roll back version %s of '%s'", version.version, name)
            if model_created:
                drop_if_empty(client, name)
        if not isinstance(error, MlflowException | PipelineError):
            raise
        raise PipelineError(
            f"could not promote version {version.version} of '{name}' to '{alias}' ({one_line(error)})"
        ) from None
    try:
        return client.get_model_version(name, version.version), created, promoted
    except MlflowException as error:
        # The promotion stands; only the fresh read of the version failed.
        log.warning(
            "version %s of '%s' is registered but could not be read back (%s)", version.version, name, one_line(error)
        )
        return version, created, promoted


# What `mlflow.register_model` prints to stderr on success. The step says it in its own line, and
# "already exists" would be wrong on a first registration (the model is created just before).
REGISTRATION_NOTES = ("Successfully registered model ", "Registered model ", "Created version ")


@contextmanager
def quiet_registration_notes():
    """Hold back MLflow's registration notes from stderr; anything else printed there passes through."""
    printed = io.StringIO()
    try:
        with redirect_stderr(printed):
            yield
    finally:
        for line in printed.getvalue().splitlines():
            if not line.startswith(REGISTRATION_NOTES):
                print(line, file=sys.stderr)


TAG_JUDGED_CHAMPION = "pipeline.gate_champion_version"
TAG_JUDGED_CHAMPION_SOURCE = "pipeline.gate_champion_source"
TAG_REGISTERED_SOURCE = "pipeline.registered_source"
TAG_FAILED_CLOSED = "pipeline.gate_failed_closed"


def register_run_still_current(client, run_tags: dict[str, str], alias: str) -> bool:
    """Whether an earlier `register` run's outcome still stands, so that `main` may reuse it
    instead of judging the same model again.

    A promotion stands while its version still holds `alias`. A rejection stands while `alias`
    still points at the model it pointed at when the gate judged (the same champion, or still
    none) and the rejected version still exists: the same model against the same champion under
    the same rules gets the same answer. Versions are matched by their source as well as their
    number, since a registered model deleted and made again numbers its versions from 1.
    A rejection because a check could not run (`failed closed`), a run from before these tags,
    and any doubt about the registry (a lookup that fails) mean: judge again.
    """
    from mlflow.exceptions import MlflowException

    from tabular_pipeline.registry.promotion import current_holder

    match = re.fullmatch(r"models:/(.+)/(\d+)", run_tags.get("pipeline.output_uri", ""))
    if not match:
        return False
    name, version = match.groups()
    registered_source = run_tags.get(TAG_REGISTERED_SOURCE)
    try:
        holder = current_holder(client, name, alias)
        if run_tags.get("pipeline.gate_decision", "promoted") != "rejected":
            return (
                holder is not None
                and str(holder.version) == version
                and holder.tags.get("gate.decision") == "promoted"
                and registered_source in (None, holder.source)
            )
        if registered_source is None or run_tags.get(TAG_FAILED_CLOSED) != "false":
            return False
        judged = (run_tags.get(TAG_JUDGED_CHAMPION), run_tags.get(TAG_JUDGED_CHAMPION_SOURCE))
        if judged != ((str(holder.version), holder.source) if holder is not None else ("", "")):
            return False
        return client.get_model_version(name, version).source == registered_source
    except MlflowException:
        return False
