"""Finding a finished run whose result a new step can reuse."""

from __future__ import annotations

from tabular_pipeline.orchestration.step_runs import TAG_CACHE_KEY


def find_reusable_run(client, experiment_id: str, key: str):
    """The newest FINISHED run in the experiment that carries this cache key, or None.

    The search runs on the tracking server with a filter string, so it costs one request however
    many runs the experiment holds.

    Args:
        client: an `MlflowClient`.
        experiment_id: where to look.
        key: the cache key (`fingerprints.cache_key`).

    Returns:
        A `mlflow.entities.Run`, or None.
    """
    runs = client.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.`{TAG_CACHE_KEY}` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None
