"""Entry point `register`: register a logged model and promote it if it passes the gate."""

from __future__ import annotations

import logging

import click

from tabular_pipeline.errors import PipelineError, one_line
from tabular_pipeline.evaluation.card import log_card
from tabular_pipeline.orchestration.step_runs import TAG_OUTPUT_URI, run_step
from tabular_pipeline.parameters.entry_points import entry_point_options
from tabular_pipeline.registry.gate import candidate_run, evaluate_gate, parse_min_score
from tabular_pipeline.registry.lineage import TAG_DATA_SOURCE, lineage_tags
from tabular_pipeline.registry.lock import promotion_lock
from tabular_pipeline.registry.promotion import stage_for_alias
from tabular_pipeline.registry.registration import register_and_promote, validate_alias, validate_model_name

log = logging.getLogger("register")


def lineage_of(client, model_uri: str) -> dict[str, str]:
    """Lineage tags from the training run behind `model_uri` (none if it cannot be found: the
    registry check that follows names that problem)."""
    from mlflow.exceptions import MlflowException

    try:
        return lineage_tags(candidate_run(client, model_uri))
    except (MlflowException, PipelineError):
        return {}


def register_model(
    model_uri: str, model_name: str, alias: str, min_score_text: str, min_delta: float, force: bool
) -> None:
    """Register `model_uri` as a version of `model_name`; promote it to `alias` if the gate passes."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = validate_model_name(model_name)
    alias = validate_alias(alias.strip())
    min_score = parse_min_score(min_score_text)
    if not model_uri.strip():
        raise PipelineError("model_uri is empty; expected models:/<model id> or runs:/<run id>/model")
    client = MlflowClient()
    decisions = []

    def judge(version: str) -> tuple[bool, dict[str, str]]:
        decision = evaluate_gate(client, model_uri.strip(), name, alias, version, min_score, min_delta, force)
        decisions.append(decision)
        return decision.promote, decision.as_tags(min_score, min_delta, force)

    with promotion_lock(client, name, mlflow.active_run().info.run_id):
        version, created, promoted = register_and_promote(
            client, model_uri.strip(), name, alias, judge, extra_tags=lineage_of(client, model_uri.strip())
        )
    decision = decisions[0]
    registered_uri = f"models:/{name}/{version.version}"
    mlflow.set_tags(
        {
            TAG_OUTPUT_URI: registered_uri,
            "pipeline.registered_version": version.version,
            "pipeline.version_created": str(created).lower(),
            "pipeline.gate_decision": "promoted" if promoted else "rejected",
            "pipeline.gate_reason": decision.reason[:500],
        }
    )
    if decision.candidate_score is not None:
        mlflow.log_metric("gate_candidate_score", decision.candidate_score)
    if decision.champion_score is not None:
        mlflow.log_metric("gate_champion_score", decision.champion_score)
    try:
        # What a person reads; the decision itself is already in the version's tags.
        describe_version(client, model_uri.strip(), name, version.version, alias, decision, promoted)
        publish_card(
            client, model_uri.strip(), name, version.version, alias, decision, promoted, (min_score, min_delta, force)
        )
    except MlflowException as error:
        log.warning("the version's description or card could not be written (%s)", one_line(error))
    action = "registered" if created else "found existing"
    if promoted:
        stage = stage_for_alias(alias)
        where = f"models:/{name}@{alias}" + (f", models:/{name}/{stage}" if stage else "")
        log.info("%s %s and promoted it (%s): %s", action, registered_uri, where, decision.reason)
    else:
        log.info("%s %s but REJECTED it for '%s': %s", action, registered_uri, alias, decision.reason)


def publish_card(client, model_uri: str, name: str, version: str, alias: str, decision, promoted: bool, rules) -> None:
    """Rebuild the training run's model card with the gate's decision, there and on this run."""
    import mlflow

    min_score, min_delta, force = rules
    registered_uri = f"models:/{name}/{version}"
    gate = {
        "decision": "promoted" if promoted else "rejected",
        "headline": f"Version {version} of '{name}': " + ("promoted to " if promoted else "not promoted to ") + alias,
        "reason": decision.reason,
        "details": decision.details(min_score, min_delta, force),
        "model_uri": f"models:/{name}@{alias}" if promoted else registered_uri,
    }
    training_run_id = candidate_run(client, model_uri).info.run_id
    log_card(client, training_run_id, gate, also_to=mlflow.active_run().info.run_id)


def version_description(metric: str, score: float | None, source: str, promoted: bool, alias: str, reason: str) -> str:
    """The few lines a person reads first in the registry: the score, the data, the gate's call."""
    from pathlib import PurePosixPath

    shown = f"{metric} {score:.4f}" if score is not None else f"no {metric}"
    data = PurePosixPath(source).name or source or "unknown data"
    verdict = f"Promoted to '{alias}'" if promoted else f"Not promoted to '{alias}'"
    return f"{shown} on {data}. {verdict}: {reason}"


def describe_version(client, model_uri: str, name: str, version: str, alias: str, decision, promoted: bool) -> None:
    """Write the version's description (score, data, decision); the figures stay in its tags."""
    run = candidate_run(client, model_uri)
    source = run.data.tags.get(TAG_DATA_SOURCE, run.data.params.get("data_path", ""))
    text = version_description(decision.metric, decision.candidate_score, source, promoted, alias, decision.reason)
    client.update_model_version(name, version, description=text[:1000])


# Help lines for `--help`; names, types and defaults come from MLproject.
HELP = {
    "model_uri": "models:/<model id> or runs:/<run id>/model.",
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
