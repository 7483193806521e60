"""The Spark engine of batch scoring: `mlflow.pyfunc.spark_udf` over a Spark DataFrame.

It runs on a local session (`local[*]`) or on a cluster given as a `spark://` master URL; the
input and output paths must then be visible to every executor (a shared or object-store path).
Spark writes its output as a folder of part files, the usual layout for Spark tables; pandas,
pyarrow and Spark all read such a folder as one table.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.scoring.batch import PREDICTION_COLUMN, ROW_NUMBER_COLUMN, InputColumn, ScoringPlan

if TYPE_CHECKING:
    from tabular_pipeline.monitoring.monitor import ScoringMonitor

log = logging.getLogger("predict")
# The scored frame's own columns, named so they cannot meet a table's: the cast inputs, the label, the answer.
FEATURE_PREFIX = "__tabular_pipeline_input_"
LABEL_ALIAS = "__tabular_pipeline_label"
ANSWER = "__tabular_pipeline_answer"

# MLflow column types and the Spark SQL types the input is cast to (and results are declared as).
SPARK_TYPES = {
    "double": "double",
    "float": "float",
    "long": "bigint",
    "integer": "int",
    "string": "string",
    "boolean": "boolean",
    "binary": "binary",
    "datetime": "timestamp",
    "any": "double",  # whole-number columns of the project's models (`training.model_logging`)
}
# Numpy dtypes of tensor outputs (a model returning an array) and their Spark types.
NUMPY_SPARK_TYPES = {
    "int64": "bigint",
    "int32": "int",
    "float64": "double",
    "float32": "float",
    "bool": "boolean",
    "object": "string",
    "str": "string",
}


def result_type(output_schema) -> str:
    """The Spark type of the model's predictions, from its output schema (double when unknown)."""
    if output_schema is None or len(output_schema.inputs) != 1:
        return "double"
    spec = output_schema.inputs[0]
    type_name = str(getattr(spec.type, "name", spec.type))
    return SPARK_TYPES.get(type_name) or NUMPY_SPARK_TYPES.get(type_name, "double")


def score_frame(
    frame,
    plan: ScoringPlan,
    model_uri: str,
    features: list[InputColumn],
    prediction_type: str,
    monitor: ScoringMonitor | None = None,
):
    """Key columns (or a row number) plus a `prediction` column computed by the model's UDF, and
    the observation that counts the scoring pass (its rows, and the monitor's counts).

    The model's inputs are cast once; the monitor counts those cast values, the label column and
    the model's answer (with class probabilities when the monitor needs them, from the same call)
    as the output is written: no second read of the input.

    Returns:
        The frame to write, its `pyspark.sql.Observation` (read it after the write) and, when the
        realized ROC AUC needs a second pass (`spark_counts.needs_score_counts`), the scored rows
        persisted by the write for `add_ranked_aucs` (else None; unpersist it when done).
    """
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from tabular_pipeline.monitoring import spark_counts

    spark = frame.sparkSession
    columns = monitor.probability_columns if monitor is not None else []
    if columns:
        from tabular_pipeline.serving.model import PROBABILITIES_PARAM

        fields = [f"{PREDICTION_COLUMN} {prediction_type}", *(f"{quoted(name)} double" for name in columns)]
        udf = spark_udf(spark, model_uri, ", ".join(fields), params={PROBABILITIES_PARAM: True})
    else:
        udf = spark_udf(spark, model_uri, prediction_type)
    # Spark infers int for small whole numbers where pyarrow and pandas infer int64: widen, so both engines agree.
    narrow = {name for name, kind in frame.dtypes if kind in ("tinyint", "smallint", "int")}
    keys = [
        F.col(f"`{name}`").cast("bigint").alias(name) if name in narrow else F.col(f"`{name}`")
        for name in plan.key_columns
    ]
    if plan.add_row_number:
        frame = with_row_number(frame)
        keys = [F.col(ROW_NUMBER_COLUMN)]
    cast = {c.name: f"{FEATURE_PREFIX}{i}" for i, c in enumerate(features)}
    inputs = [F.col(f"`{c.name}`").cast(SPARK_TYPES[c.type_name]).alias(cast[c.name]) for c in features]
    label_column = monitor.label_column if monitor is not None else None
    label = [F.col(f"`{label_column}`").alias(LABEL_ALIAS)] if label_column in frame.columns else []
    staged = frame.select(*keys, *inputs, *label)
    answer = udf(F.struct(*[F.col(cast[c.name]).alias(c.name) for c in features]))
    scored = staged.select(*[F.col(f"`{k}`") for k in staged.columns], answer.alias(ANSWER))
    prediction = F.col(ANSWER).getField(PREDICTION_COLUMN) if columns else F.col(ANSWER)
    derived, expressions = [], [F.count(F.lit(1)).alias(spark_counts.ROWS)]
    if monitor is not None:
        derived, expressions = spark_counts.drift_expressions(monitor, cast)
        expressions.insert(0, F.count(F.lit(1)).alias(spark_counts.ROWS))
        if monitor.performance is not None:
            label_type = dict(frame.dtypes).get(label_column, "string")
            text = spark_counts.label_text(F.col(LABEL_ALIAS), label_type) if label else None
            answered = (
                prediction
                if monitor.performance.task == "regression"
                else spark_counts.label_text(prediction, prediction_type)
            )
            probabilities = [F.col(ANSWER).getField(name) for name in columns]
            columns, aggregates = spark_counts.performance_expressions(monitor, text, answered, probabilities)
            derived, expressions = derived + columns, expressions + aggregates
    observation = Observation(spark_counts.OBSERVATION_NAME)
    # What the counts need per row is computed once per row, beside the answer; the aggregations only add up.
    counted = scored.select("*", *derived)
    kept = None
    if monitor is not None and spark_counts.needs_score_counts(monitor, bool(label)):
        # Without the model's inputs (the counts' per-row columns stay: the write reads them from here).
        kept = counted.drop(*cast.values()).persist()
        counted = kept
    observed = counted.observe(observation, *expressions)
    key_names = [ROW_NUMBER_COLUMN] if plan.add_row_number else plan.key_columns
    written = observed.select(*[F.col(f"`{k}`") for k in key_names], prediction.alias(PREDICTION_COLUMN))
    return written, observation, kept


class _WithoutLocalEnvAdvice(logging.Filter):
    """Drops MLflow's standing advice against `env_manager="local"`: the step runs in the model's
    own pinned environment (its Python is checked before scoring), and MLflow still warns about a
    requirement that does not match, which is a real problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith('Calling `spark_udf()` with `env_manager="local"`')


def spark_udf(spark, model_uri: str, result_type: str, params: dict | None = None):
    """`mlflow.pyfunc.spark_udf` in this process's environment, without MLflow's advice line."""
    import mlflow.pyfunc

    advice = _WithoutLocalEnvAdvice()
    logger = logging.getLogger("mlflow.pyfunc")
    logger.addFilter(advice)
    try:
        return mlflow.pyfunc.spark_udf(spark, model_uri, result_type=result_type, env_manager="local", params=params)
    finally:
        logger.removeFilter(advice)


def add_ranked_aucs(kept, monitor: ScoringMonitor) -> None:
    """Each scored class's exact ROC AUC, from the rows `score_frame` kept, into the monitor's counts.

    After the predictions are published: a failure here costs one figure, not the output."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F

    from tabular_pipeline.monitoring import spark_counts

    probabilities = [F.col(ANSWER).getField(name) for name in monitor.probability_columns]
    try:
        monitor.performance.counts.ranked_aucs = spark_counts.ranked_aucs(kept, monitor, probabilities)
    except (PySparkException, Py4JError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        log.warning("the realized ROC AUC is left out: Spark could not rank the scored rows (%s)", first_line[:200])


def quoted(name: str) -> str:
    """A column name as Spark's DDL reads it, whatever characters it holds."""
    return "`" + name.replace("`", "``") + "`"


def with_row_number(frame):
    """Add a 0-based row number in input order, as the pandas engine numbers rows.

    `monotonically_increasing_id` puts the partition index in the upper bits; one counting pass
    gives each partition's offset, so the numbers are contiguous without moving rows to one node.
    """
    from pyspark.sql import functions as F

    counts = dict(frame.groupBy(F.spark_partition_id().alias("part")).count().collect())
    offsets, running = [], 0
    for part in range(max(counts, default=-1) + 1):
        offsets.append(running)
        running += counts.get(part, 0)
    local_index = F.monotonically_increasing_id().bitwiseAND((1 << 33) - 1)
    offset = F.element_at(
        F.array(*[F.lit(o) for o in offsets or [0]]).cast("array<bigint>"), F.spark_partition_id() + 1
    )
    return frame.withColumn(ROW_NUMBER_COLUMN, offset + local_index)


def write_table(frame, path: str, fmt: str) -> None:
    """Write the scored frame as a folder of Parquet or CSV (with header) part files."""
    writer = frame.write.mode("overwrite")
    if fmt == "csv":
        writer = writer.option("header", "true")
    writer.format(fmt).save(path)


def readable_failure(error, frame, features: list[InputColumn]) -> Exception:
    """A one-line `PipelineError` for a Spark failure caused by the data (a value the model's
    column type cannot hold, as the pandas engine reports it); any other failure unchanged.

    Spark names the value, not the column, so the columns cast to that type are searched for it
    (only on this failure path).
    """
    from pyspark.sql import functions as F

    condition = getattr(error, "getCondition", getattr(error, "getErrorClass", lambda: None))()
    if condition != "CAST_INVALID_INPUT":
        return error
    parameters = error.getMessageParameters() or {}
    value = str(parameters.get("expression", "")).strip("'")
    target = str(parameters.get("targetType", "")).strip('"').lower()
    candidates = [c.name for c in features if SPARK_TYPES[c.type_name] == target or c.type_name == target]
    try:
        column = next(
            (name for name in candidates if frame.filter(F.col(f"`{name}`").cast("string") == value).limit(1).count()),
            None,
        )
    except Exception:  # noqa: BLE001 - the search only names the column; the value alone still says what is wrong
        column = None
    where = f"column '{column}'" if column else "a column"
    return PipelineError(
        f"{where} cannot be read as {target} (the value '{value}'); expected values of the type the model was "
        "trained on"
    )
