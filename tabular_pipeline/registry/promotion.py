"""Moving an alias (and the matching legacy stage) to a version, and putting both back if that is cut off half way."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

from tabular_pipeline.errors import one_line

log = logging.getLogger("registry")
# Aliases that also set the legacy stage, so `models:/<name>/Production` URIs keep resolving.
_STAGE_FOR_ALIAS = {"production": "Production", "staging": "Staging"}


def stage_for_alias(alias: str) -> str | None:
    """The legacy stage that mirrors `alias` (production -> Production), or None."""
    return _STAGE_FOR_ALIAS.get(alias.lower())


def promote(client, name: str, version: str, alias: str) -> None:
    """Point `alias` at the version and move the matching stage there, archiving the previous one."""
    client.set_registered_model_alias(name, alias, version)
    stage = stage_for_alias(alias)
    if stage:
        with warnings.catch_warnings():
            # Stages are deprecated in MLflow 3, but DolphinScheduler serves `models:/<name>/Production`.
            warnings.simplefilter("ignore", FutureWarning)
            client.transition_model_version_stage(name, version, stage)
            # Archived one by one: MLflow's archive_existing_versions=True emits SQL that
            # PostgreSQL refuses (it compares an integer column with text).
            for other in client.search_model_versions(f"name = '{name}'"):
                if str(other.version) != str(version) and other.current_stage == stage:
                    client.transition_model_version_stage(name, other.version, "Archived")


def current_holder(client, name: str, alias: str):
    """The version holding `alias`, or None when the model or the alias does not exist.

    Any other failure (the server, permissions) raises: "cannot tell" must not read as "no champion".
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        missing = error.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            error.error_code == "INVALID_PARAMETER_VALUE" and "not found" in error.message
        )
        if missing:
            return None
        raise


@dataclass(frozen=True)
class PromotionState:
    """Who held the alias and the matching stage before a promotion, to put back if it fails."""

    alias_version: str | None
    stages: dict[str, str]


def promotion_state(client, name: str, version: str, alias: str) -> PromotionState:
    """The alias holder, and the stage of the candidate and of every version in the alias's stage."""
    holder = current_holder(client, name, alias)
    stage = stage_for_alias(alias)
    versions = client.search_model_versions(f"name = '{name}'") if stage else []
    stages = {
        str(v.version): v.current_stage for v in versions if v.current_stage == stage or str(v.version) == str(version)
    }
    return PromotionState(str(holder.version) if holder is not None else None, stages)


def restore_promotion(client, name: str, alias: str, state: PromotionState) -> None:
    """Put the alias and the stages back as `state` recorded them (best effort, each step logged)."""
    from mlflow.exceptions import MlflowException

    try:
        if state.alias_version is not None:
            client.set_registered_model_alias(name, alias, state.alias_version)
        else:
            client.delete_registered_model_alias(name, alias)
    except MlflowException as error:
        log.warning("could not put alias '%s' of '%s' back (%s)", alias, name, one_line(error))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for version, stage in state.stages.items():
            try:
                client.transition_model_version_stage(name, version, stage)
            except MlflowException as error:
                log.warning("could not put version %s of '%s' back in %s (%s)", version, name, stage, one_line(error))
