"""The two engines of `predict`: pandas (streams the table in batches) and Spark (`spark_udf` on a
session or a cluster)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tabular_pipeline.errors import PipelineError, one_line
from tabular_pipeline.scoring.batch import (
    ScoringTotals,
    TableWriter,
    input_columns,
    plan_scoring,
    score_stream,
)
from tabular_pipeline.scoring.outputs import confirm_replaceable, discard, publish, staging_path
from tabular_pipeline.scoring.ownership import mark_folder

if TYPE_CHECKING:  # numpy and pandas load only when a table is scored
    from tabular_pipeline.monitoring.monitor import ScoringMonitor

log = logging.getLogger("predict")

PROGRESS_EVERY_S = 10.0


def pandas_engine(
    source: Path,
    fmt: str,
    info,
    model_dir: Path,
    key_columns: list[str],
    batch_rows: int,
    output: Path,
    output_format: str,
    monitor: ScoringMonitor | None,
    record: dict[str, str] | None = None,
    overwrite: bool = False,
) -> ScoringTotals:
    """Stream the table through the model one batch at a time; `monitor` counts each batch as cast
    for the model (with its label column and the model's answer); `record` marks the output as predict's."""
    import mlflow.pyfunc
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds

    from tabular_pipeline.data.tables import pandas_like_csv_options
    from tabular_pipeline.scoring.batch import CSV_BLOCK_BYTES

    if output.is_dir():
        raise PipelineError(
            f"output {output} is a folder; expected a .parquet or .csv file path (the pandas engine writes one file)"
        )
    csv_format = ds.CsvFileFormat(
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES), convert_options=pandas_like_csv_options()
    )
    file_format = csv_format if fmt == "csv" else "parquet"
    try:
        dataset = ds.dataset(str(source), format=file_format)
        total = dataset.count_rows() if fmt == "parquet" else None
    except (pa.ArrowInvalid, OSError) as error:
        raise PipelineError(
            f"data {source.name} could not be read ({one_line(error)}); expected a {fmt} table with a header"
        ) from None
    label_column = monitor.label_column if monitor is not None else None
    plan = plan_scoring(
        dataset.schema.names,
        input_columns(info.signature.inputs if info.signature else None),
        key_columns,
        label_column,
    )
    with_labels = label_column in dataset.schema.names
    model = mlflow.pyfunc.load_model(str(model_dir))
    started, last_report = time.monotonic(), [time.monotonic()]

    def predict(features, batch):
        if monitor is None:
            return model.predict(features)
        predictions, probabilities = monitor.answer(model, features)
        labels = batch.column(label_column).to_pandas() if with_labels else None
        # Counted from the same cast batch the model sees, and the answer it gave.
        monitor.add(features, labels, predictions, probabilities)
        return predictions

    def report(totals: ScoringTotals) -> None:
        now = time.monotonic()
        if now - last_report[0] >= PROGRESS_EVERY_S:
            of = f" of {total:,}" if total else ""
            log.info("scored %s%s rows (%.0f rows/s)", f"{totals.rows:,}", of, totals.rows / (now - started))
            last_report[0] = now

    writer = TableWriter(output, output_format, record, overwrite)
    try:
        batches = _checked_batches(dataset.to_batches(batch_size=batch_rows))
        totals = score_stream(batches, plan, predict, writer, report)
    except BaseException:
        # A bad row in batch N must not leave the first N-1 batches behind, nor touch an earlier output.
        writer.discard()
        raise
    writer.commit()
    return totals


def _checked_batches(batches):
    """Arrow's lazy CSV parse errors surface while iterating; turn them into one line."""
    import pyarrow as pa

    try:
        yield from batches
    except pa.ArrowInvalid as error:
        raise PipelineError(
            f"the table could not be parsed ({one_line(error)}); expected the same columns and types on every row"
        ) from None


def spark_engine(
    source: str,
    fmt: str,
    info,
    model_dir: Path,
    key_columns: list[str],
    master: str,
    output: str,
    output_format: str,
    monitor: ScoringMonitor | None,
    record: dict[str, str] | None = None,
    overwrite: bool = False,
) -> int:
    """Score with `spark_udf` and write a folder of part files; return the row count.

    The monitor's counts are made in the job that writes the output (`DataFrame.observe`), the
    realized ROC AUC after it, from the scored rows that job cached (the session's end drops them). A Spark
    or JVM failure ends the step in one line (a value the model's types cannot hold is named with
    its column, `readable_failure`)."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    from tabular_pipeline.monitoring.spark_counts import ROWS, set_counts
    from tabular_pipeline.scoring import spark as spark_scoring
    from tabular_pipeline.spark.session import read_table, spark_failure, start_session, stop_session

    spark = start_session(master, "tabular-pipeline-predict")
    try:
        frame = read_table(spark, source, fmt)
        features = input_columns(info.signature.inputs if info.signature else None)
        label_column = monitor.label_column if monitor is not None else None
        plan = plan_scoring(frame.columns, features, key_columns, label_column)
        scored, observation, kept = spark_scoring.score_frame(
            frame, plan, str(model_dir), plan.features, spark_scoring.result_type(info.signature.outputs), monitor
        )
        staged = staging_path(Path(output))
        try:
            spark_scoring.write_table(scored, str(staged), output_format)
            totals = observation.get
            if record:
                mark_folder(staged, record)
            confirm_replaceable(Path(output), overwrite)  # again: a long job leaves time for a user's file to appear
        except BaseException as error:
            discard(staged)
            if isinstance(error, PySparkException):
                raise spark_scoring.readable_failure(error, frame, plan.features) from None
            raise
        publish(staged, Path(output))
        if monitor is not None:
            set_counts(monitor, totals, {c.name: c.name for c in plan.features})
            if kept is not None:
                spark_scoring.add_ranked_aucs(kept, monitor)
        return int(totals[ROWS] or 0)
    except (PySparkException, Py4JError) as error:
        raise spark_failure(error, "predict") from None
    finally:
        stop_session(spark)
