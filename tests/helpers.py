"""Helpers for asserting on what the tracking server holds."""

from __future__ import annotations


def runs_of(client, experiment_name: str, entry_point: str | None = None):
    """All runs of an experiment (optionally of one entry point), newest first."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1000)
    if entry_point:
        runs = [r for r in runs if r.data.tags.get("mlflow.project.entryPoint") == entry_point]
    return runs
