"""Entry point `register`: register a logged model and promote it if it passes the gate."""

from __future__ import annotations

import logging

import click

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.lineage import lineage_tags
from tabular_pipeline.promotion_gate import candidate_run, evaluate_gate, parse_min_score
from tabular_pipeline.promotion_lock import promotion_lock
from tabular_pipeline.registry import register_and_promote, stage_for_alias, validate_alias, validate_model_name
from tabular_pipeline.step_runs import TAG_OUTPUT_URI, run_step

log = logging.getLogger("register")


def lineage_of(client, model_uri: str) -> dict[str, str]:
    """Lineage tags from the training run behind `model_uri` (none if it cannot be found: the
    registry check that follows names that problem)."""
    from mlflow.exceptions import MlflowException

    try:
        return lineage_tags(candidate_run(client, model_uri))
    except (MlflowException, PipelineError):
        return {}


def register_model(model_uri: str, model_name: str, alias: str, min_score_text: str, min_delta: float, force: bool) -> None:
    """Register `model_uri` as a version of `model_name`; promote it to `alias` if the gate passes."""
    import mlflow
    from mlflow import MlflowClient

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
        version, created, promoted = register_and_promote(client, model_uri.strip(), name, alias, judge, extra_tags=lineage_of(client, model_uri.strip()))
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
    action = "registered" if created else "found existing"
    if promoted:
        stage = stage_for_alias(alias)
        where = f"models:/{name}@{alias}" + (f", models:/{name}/{stage}" if stage else "")
        log.info("%s %s and promoted it (%s): %s", action, registered_uri, where, decision.reason)
    else:
        log.info("%s %s but REJECTED it for '%s': %s", action, registered_uri, alias, decision.reason)


@click.command()
@click.option("--model_uri", required=True, help="models:/<model id> or runs:/<run id>/model.")
@click.option("--model_name", required=True, help="The registered model name.")
@click.option("--alias", default="production", show_default=True, help="Alias to point at the new version.")
@click.option("--min_score", "min_score_text", default="", help="Minimum primary metric (maximum for RMSE); empty for none.")
@click.option("--min_delta", type=float, default=0.0, show_default=True, help="How much the candidate must beat the champion by.")
@click.option("--force", type=click.BOOL, default=False, show_default=True, help="Promote whatever the gate says.")
def register(model_uri: str, model_name: str, alias: str, min_score_text: str, min_delta: float, force: bool) -> None:
    """Register a model version and promote it if it passes the gate."""
    run_step("register", lambda run: register_model(model_uri, model_name, alias, min_score_text, min_delta, force))


if __name__ == "__main__":
    register()
