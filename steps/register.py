"""Entry point `register`: register a logged model and point an alias (and stage) at it."""

from __future__ import annotations

import logging

import click

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.registry import register_and_promote, stage_for_alias, validate_alias, validate_model_name
from tabular_pipeline.step_runs import TAG_OUTPUT_URI, run_step

log = logging.getLogger("register")


def register_model(model_uri: str, model_name: str, alias: str, run) -> None:  # noqa: ARG001
    """Register `model_uri` as a new version of `model_name` and promote it to `alias`."""
    import mlflow
    from mlflow import MlflowClient

    name = validate_model_name(model_name)
    alias = validate_alias(alias.strip())
    if not model_uri.strip():
        raise PipelineError("model_uri is empty; expected models:/<model id> or runs:/<run id>/model")
    client = MlflowClient()
    version, created = register_and_promote(client, model_uri.strip(), name, alias)
    registered_uri = f"models:/{name}/{version.version}"
    mlflow.set_tags({TAG_OUTPUT_URI: registered_uri, "pipeline.registered_version": version.version, "pipeline.version_created": str(created).lower()})
    stage = stage_for_alias(alias)
    log.info(
        "%s %s (alias models:/%s@%s%s)",
        "registered" if created else "re-promoted",
        registered_uri,
        name,
        alias,
        f", stage models:/{name}/{stage}" if stage else "",
    )


@click.command()
@click.option("--model_uri", required=True, help="models:/<model id> or runs:/<run id>/model.")
@click.option("--model_name", required=True, help="The registered model name.")
@click.option("--alias", default="production", show_default=True, help="Alias to point at the new version.")
def register(model_uri: str, model_name: str, alias: str) -> None:
    """Register a model version and promote it."""
    run_step("register", lambda run: register_model(model_uri, model_name, alias, run))


if __name__ == "__main__":
    register()
