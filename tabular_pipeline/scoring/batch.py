"""Batch scoring: what to read, which columns to keep, and streaming a table through a model.

The pandas engine reads the table in Arrow record batches, casts each batch to the model's input
schema (text where a number is expected is refused there, in one line naming the column),
predicts, and appends key columns plus predictions to the output file, so memory stays flat
whatever the table's size. The Spark engine lives in `spark`; `engines` runs both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from tabular_pipeline.errors import PipelineError, one_line

OUTPUT_FORMATS = ("parquet", "csv")
PREDICTION_COLUMN = "prediction"
# Added when the input has no column besides the model's inputs, so rows can be joined back.
ROW_NUMBER_COLUMN = "row_number"
DEFAULT_BATCH_ROWS = 100_000
# CSV blocks are parsed in parallel; types of columns the model does not read come from the first block.
CSV_BLOCK_BYTES = 16 << 20

# MLflow column types (`DataType.name`) and the Arrow types the model's input is cast to.
ARROW_TYPES = {
    "double": pa.float64(),
    "float": pa.float32(),
    "long": pa.int64(),
    "integer": pa.int32(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "binary": pa.binary(),
    "datetime": pa.timestamp("ns"),
    # The project's models declare whole-number columns `any` (`training.model_logging`) and were
    # trained on them as float64.
    "any": pa.float64(),
}


@dataclass(frozen=True)
class InputColumn:
    """One column of the model's input schema."""

    name: str
    type_name: str
    required: bool = True


@dataclass(frozen=True)
class ScoringPlan:
    """Which input columns feed the model and which are copied to the output."""

    features: list[InputColumn]
    key_columns: list[str]
    add_row_number: bool


@dataclass
class ScoringTotals:
    """What a scoring run did, for its metrics and its closing log line."""

    rows: int = 0
    batches: int = 0


def table_format(path: str, what: str) -> str:
    """ "parquet" or "csv", from the path's suffix (a Spark output folder of part files counts as its suffix)."""
    suffix = Path(path.rstrip("/")).suffix.lower().lstrip(".")
    if suffix not in OUTPUT_FORMATS:
        raise PipelineError(f"{what} '{path}' must end in .parquet or .csv; expected a Parquet or CSV table")
    return suffix


def input_columns(schema) -> list[InputColumn]:
    """The model's input columns from its MLflow `Schema` (a model without one cannot be batch scored)."""
    if schema is None or not schema.has_input_names():
        raise PipelineError(
            "the model has no named input schema; expected a model logged with a signature (every model of this "
            "project has one)"
        )
    from mlflow.types.schema import AnyType

    columns = []
    for spec in schema.inputs:
        type_name = "any" if isinstance(spec.type, AnyType) else getattr(spec.type, "name", str(spec.type))
        if type_name not in ARROW_TYPES:
            raise PipelineError(
                f"model input '{spec.name}' has type {type_name}; expected one of {', '.join(ARROW_TYPES)}"
            )
        columns.append(InputColumn(spec.name, type_name, spec.required))
    return columns


def parse_key_columns(text: str) -> list[str]:
    """Comma-separated column names, blanks dropped ("" means: choose them from the table)."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def plan_scoring(
    table_columns: list[str], features: list[InputColumn], requested_keys: list[str], label_column: str | None = None
) -> ScoringPlan:
    """Check the table against the model and decide which columns go to the output.

    Args:
        table_columns: the input table's column names.
        features: the model's input columns.
        requested_keys: the user's key columns; empty means every column the model does not read
            (ids) but the label, or a row number when there is none.
        label_column: the model's label column, which `predict` measures performance with; it is
            a key column only when requested.

    Returns:
        The plan.
    """
    present = set(table_columns)
    # Optional columns (ones that held gaps in training) are required too: a whole column missing
    # is a wrong table, and the fitted pipeline selects every training column by name.
    missing = [column.name for column in features if column.name not in present]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise PipelineError(
            f"the table lacks {len(missing)} column(s) the model needs ({shown}); expected the columns the model "
            "was trained on"
        )
    unknown = [name for name in requested_keys if name not in present]
    if unknown:
        raise PipelineError(f"key column(s) {', '.join(unknown)} are not in the table; expected names from its header")
    if PREDICTION_COLUMN in requested_keys:
        raise PipelineError(
            f"key column '{PREDICTION_COLUMN}' would clash with the output's prediction column; rename it"
        )
    feature_names = {column.name for column in features}
    left_out = {*feature_names, PREDICTION_COLUMN, label_column}
    keys = requested_keys or [name for name in table_columns if name not in left_out]
    return ScoringPlan(features=list(features), key_columns=keys, add_row_number=not keys)


def arrow_feature_schema(features: list[InputColumn]) -> pa.Schema:
    """The Arrow schema that the model's input columns are cast to."""
    return pa.schema([pa.field(column.name, ARROW_TYPES[column.type_name]) for column in features])


def cast_features(batch: pa.RecordBatch | pa.Table, target: pa.Schema) -> pa.Table:
    """Select the model's columns from a batch and cast them to the model's types.

    Raises a one-line `PipelineError` naming the column when a value cannot be cast (text in a
    numeric column, for instance).
    """
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    columns = []
    for field in target:
        column = table.column(field.name)
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                first = one_line(error)
                raise PipelineError(
                    f"column '{field.name}' cannot be read as {field.type} ({first}); expected values of the type "
                    "the model was trained on"
                ) from None
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=target)


def output_columns(batch: pa.RecordBatch | pa.Table, plan: ScoringPlan, predictions, first_row: int) -> pa.Table:
    """Key columns (or a running row number) plus the prediction column, as an Arrow table."""
    import numpy as np

    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    arrays, names = [], []
    if plan.add_row_number:
        arrays.append(pa.array(np.arange(first_row, first_row + table.num_rows, dtype=np.int64)))
        names.append(ROW_NUMBER_COLUMN)
    for name in plan.key_columns:
        column = table.column(name)
        arrays.append(column.cast(pa.string()) if pa.types.is_dictionary(column.type) else column)
        names.append(name)
    values = np.asarray(predictions)
    if values.ndim != 1:
        raise PipelineError(f"the model returned predictions of shape {values.shape}; expected one value per row")
    arrays.append(pa.array(values))
    names.append(PREDICTION_COLUMN)
    return pa.Table.from_arrays(arrays, names=names)


def header_quoting(names: list[str]) -> str:
    """pyarrow's header quoting: none, as pandas writes it, unless a name needs quotes to parse."""
    plain = all(not any(char in name for char in ',"\r\n') and name == name.strip() for name in names)
    return "none" if plain else "needed"


class TableWriter:
    """Appends Arrow tables to one Parquet or CSV file, staged beside `path` until `commit`.

    An existing file at `path` stays untouched until every batch has been written. With a `record`
    (`scoring.ownership.output_record`), the file is marked as predict's: a Parquet footer key, or
    a CSV's sidecar.
    """

    def __init__(self, path: Path, fmt: str, record: dict[str, str] | None = None, overwrite: bool = False):
        from tabular_pipeline.scoring.outputs import staging_path

        self.path, self.fmt, self.record, self.overwrite, self._writer = path, fmt, record, overwrite, None
        self.staged = staging_path(path)

    def write(self, table: pa.Table) -> None:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        from tabular_pipeline.scoring.ownership import parquet_metadata

        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.fmt == "parquet":
                schema = table.schema
                if self.record:
                    schema = schema.with_metadata({**(schema.metadata or {}), **parquet_metadata(self.record)})
                self._writer = pq.ParquetWriter(self.staged, schema)
            else:
                options = pacsv.WriteOptions(quoting_header=header_quoting(table.schema.names))
                self._writer = pacsv.CSVWriter(self.staged, table.schema, write_options=options)
        self._writer.write_table(table)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def commit(self) -> None:
        """Close the staged file and move it to `path` (a run that wrote no batch leaves `path` alone)."""
        from tabular_pipeline.scoring.outputs import confirm_replaceable, publish
        from tabular_pipeline.scoring.ownership import mark_csv

        self._close()
        if self._writer is not None:
            try:
                confirm_replaceable(self.path, self.overwrite)  # before the sidecar describes the new file
            except BaseException:
                self.discard()
                raise
            if self.record and self.fmt == "csv":
                mark_csv(self.staged, self.path, self.record)
            publish(self.staged, self.path)

    def discard(self) -> None:
        """Close and delete the staged file; `path` is not touched."""
        from tabular_pipeline.scoring.outputs import discard

        self._close()
        discard(self.staged)


def score_stream(
    batches: Iterator[pa.RecordBatch],
    plan: ScoringPlan,
    predict: Callable[[object, pa.RecordBatch], object],
    writer: TableWriter,
    on_batch: Callable[[ScoringTotals], None] | None = None,
) -> ScoringTotals:
    """Score batches one at a time and append key columns plus predictions to `writer`.

    Args:
        batches: record batches of the input table.
        plan: the columns to feed and to keep.
        predict: the model's predict, called with a pandas frame of the model's input columns (as
            cast for the model) and the batch they come from (for columns the model does not read).
        writer: where the output rows go.
        on_batch: called after each batch (progress logging).

    Returns:
        The totals.
    """
    target = arrow_feature_schema(plan.features)
    totals = ScoringTotals()
    for batch in batches:
        features = cast_features(batch, target).to_pandas()
        writer.write(output_columns(batch, plan, predict(features, batch), totals.rows))
        totals.rows += batch.num_rows
        totals.batches += 1
        if on_batch is not None:
            on_batch(totals)
    return totals
