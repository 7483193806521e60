"""The datasets a run records (`mlflow.log_input`): an explicit source, a schema from a sample,
and a retry when another run inserts the same new dataset at the same moment."""

from __future__ import annotations

import logging
from functools import cached_property

import pandas as pd
from mlflow.data.pandas_dataset import PandasDataset

from tabular_pipeline.data.schemas import frame_schema

DATASET_LOG_ATTEMPTS = 4
# How PostgreSQL, SQLite and MySQL word a duplicate key; the tracking server passes the text on.
DUPLICATE_KEY_WORDINGS = ("duplicate key value", "unique constraint failed", "duplicate entry")
log = logging.getLogger("lineage")


class SampledSchemaDataset(PandasDataset):
    """A `PandasDataset` whose schema comes from `frame_schema` (types from a sample, optional
    flags from the whole frame): MLflow infers it value by value, 14 s on 225,000 rows. The digest
    and row count stay MLflow's own, computed from the whole frame."""

    @cached_property
    def schema(self):
        return frame_schema(self.df)


def dataset_source(uri: str):
    """An explicit MLflow dataset source for a table's URI (MLflow warns that a bare local path
    "can be interpreted in multiple ways" when left to guess)."""
    from mlflow.data.dataset_source_registry import get_registered_sources, resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    if uri.lower().startswith(("http://", "https://")):
        return HTTPDatasetSource(uri)
    local = [source for source in get_registered_sources() if source.__name__ == "LocalArtifactDatasetSource"]
    return resolve_dataset_source(uri, candidate_sources=local[:1] or None)


def pandas_dataset(frame: pd.DataFrame, name: str, source: str | None = None, **kwargs) -> SampledSchemaDataset:
    """A dataset record of `frame`; without a `source`, MLflow's code source (this run's code).

    Args:
        frame: the table.
        name: the dataset's name in the run (train, test, or the raw file's stem).
        source: where the table came from, already without credentials or signatures.
        kwargs: `targets`, `digest` as `mlflow.data.from_pandas` takes them.
    """
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.tracking.context import registry

    resolved = dataset_source(source) if source else CodeDatasetSource(tags=registry.resolve_tags())
    return SampledSchemaDataset(df=frame, source=resolved, name=name, **kwargs)


def is_concurrent_dataset_insert(error: BaseException) -> bool:
    """Whether a `log_input` error is the tracking store losing a race: two runs inserting the
    same new dataset (experiment, name, digest) at once, so the second insert hits the key."""
    from mlflow.exceptions import MlflowException

    lowered = str(error).lower()
    return (
        isinstance(error, MlflowException)
        and "dataset" in lowered
        and any(w in lowered for w in DUPLICATE_KEY_WORDINGS)
    )


def log_dataset(dataset, context: str, attempts: int = DATASET_LOG_ATTEMPTS) -> None:
    """`mlflow.log_input`, tried again when a concurrent run inserted the same dataset first.

    MLflow's store looks the dataset up and then inserts it, in one transaction that is rolled
    back on the duplicate key; on the next try the lookup finds the other run's row and links it.
    """
    import mlflow
    from tenacity import before_sleep_log, retry, retry_if_exception, stop_after_attempt, wait_exponential

    log_once = retry(
        retry=retry_if_exception(is_concurrent_dataset_insert),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.2, max=2),
        before_sleep=before_sleep_log(log, logging.INFO),
        reraise=True,
    )(mlflow.log_input)
    log_once(dataset, context=context)
