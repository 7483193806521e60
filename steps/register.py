"""Entry point `register`: register a logged model and promote it if it passes the gate."""

from __future__ import annotations

import logging

import click

from tabular_pipeline.errors import PipelineError, one_line
from tabular_pipeline.evaluation.card import log_card
from tabular_pipeline.orchestration.step_runs import TAG_OUTPUT_URI, run_step
from tabular_pipeline.parameters.entry_points import entry_point_options
from tabular_pipeline.registry.gate_rule import GateDecision, GateRules, parse_min_score
from tabular_pipeline.registry.lineage import TAG_DATA_SOURCE, lineage_tags
from tabular_pipeline.registry.promotion import stage_for_alias
from tabular_pipeline.registry.registration import (
    TAG_FAILED_CLOSED,
    TAG_JUDGED_CHAMPION,
    TAG_JUDGED_CHAMPION_SOURCE,
    TAG_REGISTERED_SOURCE,
    register_and_promote,
    validate_alias,
    validate_model_name,
)

log = logging.getLogger("register")
TAG_COPIED_FROM = "pipeline.copied_from"


def lineage_of(client, model_uri: str) -> dict[str, str]:
    """Lineage tags from the training run behind `model_uri` (none if it cannot be found: the
    registry check that follows names that problem)."""
    from mlflow.exceptions import MlflowException

    from tabular_pipeline.registry.evidence import training_run_of

    try:
        return lineage_tags(training_run_of(client, model_uri))
    except (MlflowException, PipelineError):
        return {}


def model_to_register(client, model_uri: str) -> tuple[str, dict[str, str]]:
    """The logged model to register, and tags saying where it was copied from: a registered version
    (``models:/<name>/<version>``, ``@<alias>``, a stage) stands for the logged model behind it."""
    from tabular_pipeline.registry.model_uris import parse_model_uri, registered_version

    if not model_uri:
        raise PipelineError(
            "model_uri is empty; expected models:/<model id>, runs:/<run id>/model or models:/<name>/<version>"
        )
    if parse_model_uri(model_uri)[0] != "registered":
        return model_uri, {}
    version = registered_version(client, model_uri)
    try:
        parse_model_uri(version.source)
    except PipelineError:
        raise PipelineError(
            f"{model_uri} is version {version.version} of '{version.name}', registered from {version.source}, which "
            "is not a logged model; expected a version registered from models:/<model id> or runs:/<run id>/<path>"
        ) from None
    copied = f"models:/{version.name}/{version.version}"
    # "models:/x/1 is the logged model ..."; an alias or stage also says which version it points at.
    which = "" if model_uri == copied else f" ({copied})"
    log.info("%s%s is the logged model %s", model_uri, which, version.source)
    return version.source, {TAG_COPIED_FROM: copied}


def register_model(
    model_uri: str, model_name: str, alias: str, min_score_text: str, min_delta: float, force: bool
) -> None:
    """Register `model_uri` as a version of `model_name`; promote it to `alias` if the gate passes."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from tabular_pipeline.registry.gate import evaluate_gate
    from tabular_pipeline.registry.lock import promotion_lock

    name = validate_model_name(model_name)
    alias = validate_alias(alias.strip())
    rules = GateRules(parse_min_score(min_score_text), min_delta, force)
    client = MlflowClient()
    source, copied = model_to_register(client, model_uri.strip())
    decisions: list[GateDecision] = []

    def judge(version: str) -> tuple[bool, dict[str, str]]:
        decision = evaluate_gate(client, source, name, alias, version, rules)
        decisions.append(decision)
        judged.append(version)
        return decision.promote, decision.as_tags(rules)

    judged: list[str] = []
    with promotion_lock(client, name, mlflow.active_run().info.run_id) as lock:

        def confirm() -> None:
            lock.check_still_held()
            check_champion_unchanged(client, name, alias, decisions[0].evidence.champion_version, judged[0])

        version, created, promoted = register_and_promote(
            client,
            source,
            name,
            alias,
            judge,
            extra_tags={**lineage_of(client, source), **copied},
            confirm=confirm,
        )
    decision = decisions[0]
    registered_uri = f"models:/{name}/{version.version}"
    record_decision(registered_uri, version, created, promoted, decision, champion_source(client, name, decision))
    try:
        # What a person reads; the decision itself is already in the version's tags.
        describe_version(client, source, name, version.version, alias, decision, promoted)
        publish_card(client, source, name, version.version, alias, decision, promoted, rules)
    except MlflowException as error:
        log.warning("the version's description or card could not be written (%s)", one_line(error))
    action = "registered" if created else "found existing"
    if promoted:
        stage = stage_for_alias(alias)
        where = f"models:/{name}@{alias}" + (f", models:/{name}/{stage}" if stage else "")
        log.info("%s %s and promoted it (%s): %s", action, registered_uri, where, decision.reason)
    else:
        evidence = decision.evidence
        if evidence.candidate_failure:
            # A model that cannot be served is a failed delivery, not a gate decision: the orchestrator must see it.
            raise PipelineError(
                f"{action} {registered_uri} but it cannot be served, so it did not take '{alias}': "
                f"{evidence.candidate_failure}"
            )
        # A check that could not run is a problem to look at; a worse model is the gate doing its job.
        failed_closed = evidence.champion_unjudged or evidence.too_few
        (log.warning if failed_closed else log.info)(
            "%s %s but REJECTED it for '%s': %s", action, registered_uri, alias, decision.reason
        )


def check_champion_unchanged(client, name: str, alias: str, judged_champion: str | None, candidate: str) -> None:
    """Refuse to move `alias` when it no longer points where the gate saw it (moved by hand, by
    another tool, or by a register outside the lock): the candidate was judged against another model."""
    from tabular_pipeline.registry.promotion import current_holder

    holder = current_holder(client, name, alias)
    now = str(holder.version) if holder is not None else None
    if now not in (judged_champion, candidate):
        was = f"version {judged_champion}" if judged_champion else "no version"
        raise PipelineError(
            f"'{alias}' moved to version {now} while the gate judged against {was}; expected it unchanged "
            "(run register again to judge against the new holder)"
        )


def champion_source(client, name: str, decision: GateDecision) -> str | None:
    """The source of the version the gate judged against ("" when there was none), or None when it
    cannot be read back: then the run's rejection is never reused."""
    from mlflow.exceptions import MlflowException

    judged = decision.evidence.champion_version
    if not judged:
        return ""
    try:
        return client.get_model_version(name, judged).source
    except MlflowException:
        return None


def record_decision(
    registered_uri: str, version, created: bool, promoted: bool, decision: GateDecision, judged_source: str | None
) -> None:
    """Tag the register run with the outcome and log the scores the gate compared; the gate's
    inputs from the registry (which versions, by number and source) let `main` tell on a cached
    rerun whether the outcome still stands."""
    import mlflow

    evidence = decision.evidence
    # A check that could not run is judged again on a rerun, as is a champion that cannot be named.
    failed_closed = bool(evidence.champion_unjudged or evidence.too_few) or judged_source is None
    mlflow.set_tags(
        {
            TAG_OUTPUT_URI: registered_uri,
            "pipeline.registered_version": version.version,
            "pipeline.version_created": str(created).lower(),
            "pipeline.gate_decision": "promoted" if promoted else "rejected",
            "pipeline.gate_reason": decision.reason[:500],
            TAG_REGISTERED_SOURCE: version.source,
            TAG_JUDGED_CHAMPION: evidence.champion_version or "",
            TAG_JUDGED_CHAMPION_SOURCE: judged_source or "",
            TAG_FAILED_CLOSED: str(failed_closed).lower(),
        }
    )
    figures = {
        "gate_candidate_score": evidence.candidate_score,
        "gate_champion_score": evidence.champion_score,
        "gate_candidate_whole_split_score": evidence.candidate_whole_split_score,
        "gate_compared_rows": evidence.compared_rows,
        "gate_left_out_rows": evidence.left_out_rows,
    }
    mlflow.log_metrics({key: float(value) for key, value in figures.items() if value is not None})


def publish_card(
    client, model_uri: str, name: str, version: str, alias: str, decision: GateDecision, promoted: bool, rules
) -> None:
    """Rebuild the training run's model card with the gate's decision, there and on this run."""
    import mlflow

    from tabular_pipeline.registry.evidence import training_run_of

    registered_uri = f"models:/{name}/{version}"
    gate = {
        "decision": "promoted" if promoted else "rejected",
        "headline": f"Version {version} of '{name}': " + ("promoted to " if promoted else "not promoted to ") + alias,
        "reason": decision.reason,
        "details": decision.details(rules),
        "model_uri": f"models:/{name}@{alias}" if promoted else registered_uri,
    }
    training_run_id = training_run_of(client, model_uri).info.run_id
    log_card(client, training_run_id, gate, also_to=mlflow.active_run().info.run_id)


def version_description(decision: GateDecision, source: str, promoted: bool, alias: str) -> str:
    """The few lines a person reads first in the registry: the score, the rows both models were
    compared on, and the gate's call."""
    from pathlib import PurePosixPath

    evidence = decision.evidence
    metric, whole = evidence.metric, evidence.candidate_whole_split_score
    data = PurePosixPath(source).name or source or "unknown data"
    parts = [f"{metric} {whole:.4f} on {data}" if whole is not None else f"No {metric} on {data}"]
    parts[0] += (
        " (its test split, scored as served)."
        if not evidence.sample
        else f" (test split; served on a sample of {evidence.sample})."
    )
    if evidence.champion_version and evidence.champion_score is not None and evidence.candidate_score is not None:
        rows = (
            "the same test split (both trained on the same split)"
            if evidence.same_training_split or not evidence.left_out_rows
            else f"the {evidence.compared_rows} of {evidence.test_rows} test rows version {evidence.champion_version} "
            f"did not train on ({evidence.left_out_rows} left out)"
        )
        parts.append(
            f"Against version {evidence.champion_version} on {rows}: {evidence.candidate_score:.4f} vs "
            f"{evidence.champion_score:.4f}."
        )
    verdict = f"Promoted to '{alias}'" if promoted else f"Not promoted to '{alias}'"
    parts.append(f"{verdict}: {decision.reason}")
    return " ".join(parts)


def describe_version(
    client, model_uri: str, name: str, version: str, alias: str, decision: GateDecision, promoted: bool
) -> None:
    """Write the version's description (score, compared rows, decision); the figures stay in its tags."""
    from tabular_pipeline.registry.evidence import training_run_of

    run = training_run_of(client, model_uri)
    source = run.data.tags.get(TAG_DATA_SOURCE, run.data.params.get("data_path", ""))
    client.update_model_version(
        name, version, description=version_description(decision, source, promoted, alias)[:1000]
    )


# Help lines for `--help`; names, types and defaults come from MLproject.
HELP = {
    "model_uri": "models:/<model id>, runs:/<run id>/model, or a registered models:/<name>/<version> or @<alias>.",
    "model_name": "The registered model name.",
    "alias": "Alias to point at the new version.",
    "min_score": "Minimum primary metric (maximum for RMSE); empty for none.",
    "min_delta": "How much the candidate must beat the champion by.",
    "force": "Promote whatever the gate says.",
}


@click.command()
@entry_point_options("register", HELP)
def register(model_uri: str, model_name: str, alias: str, min_score: str, min_delta: float, force: bool) -> None:
    """Register a model version and promote it if it passes the gate."""
    run_step("register", lambda _run: register_model(model_uri, model_name, alias, min_score, min_delta, force))


if __name__ == "__main__":
    register()
