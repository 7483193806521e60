"""Tables on Spark: finding and reading them, the same checks as the pandas engine, the seeded split,
and a digest that costs a file listing, not a pass over the data.

Nothing here collects a table on the driver: checks aggregate on the cluster and bring back a few
numbers, the distinct labels (at most `MAX_CLASSES_FOR_NUMERIC_LABEL` + 1 of them) or a sample.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tabular_pipeline.data.splits import MAX_CLASSES_FOR_NUMERIC_LABEL, check_label_for_task, describe_columns
from tabular_pipeline.data.splits import resolve_task as resolve_pandas_task
from tabular_pipeline.errors import PipelineError

# The rows a missing label's hint counts distinct values on (the error path, not a pass over the data).
LABEL_HINT_ROWS = 1000

# Spark column types a feature may have; anything else (dates, arrays, maps, binary) is refused.
NUMERIC_TYPES = ("double", "float", "bigint", "int", "smallint", "tinyint")
TEXT_TYPES = ("string", "boolean")
# Classes with fewer rows than this are split by exact per-class quotas (a window over their rows);
# larger ones by a seeded coin per row, which is stratified in expectation and needs no shuffle.
EXACT_SPLIT_BELOW_ROWS = 10_000
# The coin's resolution: a hash modulo this prime, as a fraction.
COIN_SIDES = 1_000_003
# More classes than this is an id or free text taken for a label.
MAX_CLASSES = 1000
# Row groups of the written splits: Parquet's writer closes one when its buffered rows reach this
# estimate (its default is 128 MB, so a 1M-row split was one row group, read back as two partitions,
# one holding every row and one empty: XGBoost then trained on one worker while the other waited).
SPLIT_ROW_GROUP_BYTES = 8 * 2**20


def is_numeric_type(kind: str) -> bool:
    """Whether a Spark type name is a number (decimals included)."""
    return kind in NUMERIC_TYPES or kind.startswith("decimal")


@dataclass(frozen=True)
class DataFile:
    """One file of a table: its URI, size and modification time (what the digest is made of)."""

    uri: str
    size: int
    modified: int


def spark_uri(path: str, project_dir: Path | None = None) -> str:
    """The URI Spark should read: a local path becomes an absolute `file://` URI (executors do not
    share the driver's working directory); `s3://` becomes `s3a://`, Hadoop's S3 connector."""
    text = path.strip()
    if "://" in text or text.startswith("file:"):
        return "s3a://" + text[len("s3://") :] if text.startswith("s3://") else text
    local = Path(text).expanduser()
    if not local.is_absolute():
        local = (project_dir or Path.cwd()) / local
    return local.resolve().as_uri()


def list_data_files(spark, uri: str) -> list[DataFile]:
    """The data files of a file, folder or glob, through Hadoop's file system API (any scheme Spark
    reads). Names starting with `_` or `.` (Spark's `_SUCCESS`, checksums) are left out, as Spark does.

    Raises:
        PipelineError: nothing exists at `uri`.
    """
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    matches = fs.globStatus(hadoop_path) or []
    files: list[DataFile] = []
    for status in matches:
        base = str(status.getPath().toString())
        statuses = [status]
        if status.isDirectory():
            iterator = fs.listFiles(status.getPath(), True)
            statuses = []
            while iterator.hasNext():
                statuses.append(iterator.next())
        for item in statuses:
            location = str(item.getPath().toString())
            # Only names below the matched path count (Spark's rule); the folders above are the user's.
            below = location[len(base) :].split("/") if location != base else [item.getPath().getName()]
            if item.isFile() and not any(part.startswith(("_", ".")) for part in below if part):
                files.append(DataFile(location, int(item.getLen()), int(item.getModificationTime())))
    if not files:
        raise PipelineError(
            f"data_path '{uri}' holds no data files; expected a CSV or Parquet file, a folder of them or a glob"
        )
    return sorted(files, key=lambda f: f.uri)


def delete_folder(spark, uri: str) -> None:
    """Remove a folder this run wrote (a split left half-written), through Hadoop's file system API."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if fs.exists(path):
        fs.delete(path, True)


def table_format(files: list[DataFile], uri: str) -> str:
    """ "csv" or "parquet", from the files' names (Spark's part files end in .parquet or .csv)."""
    suffixes = {Path(f.uri.split("?")[0]).suffix.lower() for f in files}
    suffixes = {".parquet" if s in (".pq", ".parquet") else s for s in suffixes}
    if suffixes == {".csv"}:
        return "csv"
    if suffixes == {".parquet"}:
        return "parquet"
    found = ", ".join(sorted(s or "(none)" for s in suffixes))
    raise PipelineError(f"data_path '{uri}' holds files of types {found}; expected only .csv or only .parquet files")


def listing_digest(files: list[DataFile]) -> str:
    """A digest of the file listing (names relative to their folder, sizes, modification times):
    it changes when a file is rewritten, and costs one listing at any table size."""
    entries = [[Path(f.uri).name, f.size, f.modified] for f in files]
    return "files-sha256:" + hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def read_frame(spark, uri: str):
    """Read the table at `uri` (file, folder or glob); returns the frame and its files."""
    from pyspark.errors import AnalysisException

    from tabular_pipeline.errors import one_line
    from tabular_pipeline.spark.session import read_table

    files = list_data_files(spark, uri)
    try:
        return read_table(spark, uri, table_format(files, uri)), files
    except AnalysisException as error:  # a schema Spark cannot read, such as nanosecond timestamps
        raise PipelineError(
            f"Spark cannot read {uri} ({one_line(error, 200)}); expected a CSV or Parquet table Spark can read"
        ) from None


def validate_frame(frame, label_column: str, name: str) -> None:
    """The pandas engine's checks, as aggregations on the cluster: rows, the label column, a label
    on some row, at least one feature with values, and feature types a model can take.

    Args:
        frame: the Spark DataFrame.
        label_column: the target column.
        name: how to call the table in messages.
    """
    from pyspark.sql import functions as F

    if label_column not in frame.columns:
        hint = describe_columns(frame.limit(LABEL_HINT_ROWS).toPandas(), label_column)
        raise PipelineError(f"label column '{label_column}' is not in {name} ({hint}); set -P label_column=<name>")
    if len(frame.columns) < 2:
        raise PipelineError(f"{name} has only the label column; expected at least one feature column")
    unusable = [
        f"{column} ({kind})"
        for column, kind in frame.dtypes
        if column != label_column and not is_numeric_type(kind) and kind not in TEXT_TYPES
    ]
    if unusable:
        raise PipelineError(
            f"{name} has columns of types the Spark engine cannot train on: {', '.join(unusable[:5])}; "
            "expected numbers, text or booleans"
        )
    features = [column for column in frame.columns if column != label_column]
    counts = frame.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count(F.col(f"`{label_column}`")).alias("labelled"),
        F.greatest(*[F.count(F.col(f"`{c}`")) for c in features], F.lit(0)).alias("feature_values"),
    ).first()
    if counts["rows"] == 0:
        raise PipelineError(f"{name} has a header but no data rows; expected at least one row")
    if counts["labelled"] == 0:
        raise PipelineError(f"label column '{label_column}' of {name} is empty; expected a value on every row")
    if counts["feature_values"] == 0:
        raise PipelineError(f"every feature of {name} is missing (all NaN); expected at least one feature with values")


def distinct_labels(frame, label_column: str) -> pd.Series:
    """Up to `MAX_CLASSES_FOR_NUMERIC_LABEL` + 1 distinct non-missing labels, as a pandas Series:
    enough to tell classes from a regression target with the pandas engine's rules."""
    from pyspark.sql import functions as F

    column = F.col(f"`{label_column}`")
    rows = frame.select(column).where(column.isNotNull()).distinct().limit(MAX_CLASSES_FOR_NUMERIC_LABEL + 1)
    return rows.toPandas()[label_column]


def check_class_count(frame, label_column: str, limit: int = MAX_CLASSES) -> None:
    """Refuse a classification label with more than `limit` classes (an id or free text taken as a
    label); class counts, weights and the stratified split bring one entry per class to the driver."""
    from pyspark.sql import functions as F

    column = F.col(f"`{label_column}`")
    found = frame.select(column).where(column.isNotNull()).distinct().limit(limit + 1).count()
    if found > limit:
        raise PipelineError(
            f"label column '{label_column}' has more than {limit} classes; expected a class label (or "
            "-P task=regression for a numeric target)"
        )


def resolve_task(frame, label_column: str, requested: str) -> str:
    """The task, detected (or checked) with the pandas engine's rules on the distinct labels."""
    labels = distinct_labels(frame, label_column)
    task = resolve_pandas_task(requested, labels)
    check_label_for_task(labels, task, label_column)
    return task


def harmonise_columns(frame, label_column: str):
    """Served types, as `data.splits.harmonise_dtypes` makes them: whole numbers and decimals become
    doubles (a served row may then hold a missing value); unlabelled rows (null, or NaN as Spark
    reads the text "NaN") are dropped."""
    from pyspark.sql import functions as F

    columns = []
    kinds = dict(frame.dtypes)
    for column, kind in frame.dtypes:
        quoted = F.col(f"`{column}`")
        if column == label_column:
            columns.append(quoted)
        elif is_numeric_type(kind) and kind != "double":
            columns.append(quoted.cast("double").alias(column))
        else:
            columns.append(quoted)
    label = F.col(f"`{label_column}`")
    floating = kinds[label_column] in ("double", "float")
    labelled = label.isNotNull() & ~F.isnan(label) if floating else label.isNotNull()
    return frame.select(*columns).where(labelled)


def split_frame(frame, label_column: str, test_size: float, seed: int, task: str):
    """A seeded train/test split, stratified for classification by sampling each class.

    Each row's coin is a seeded hash of its values, so the split depends on the rows and the seed
    only, not on how the cluster partitions them. Small classes get an exact share (a window over
    their rows only); large ones keep the rows whose coin falls under `test_size`, stratified in
    expectation without moving rows.

    Returns:
        (train, test) Spark DataFrames.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not 0 < test_size < 1:
        raise PipelineError(f"test_size is {test_size}; expected a fraction between 0 and 1")
    hashed = F.xxhash64(F.lit(seed), *[F.col(f"`{name}`") for name in frame.columns])
    coin = F.pmod(hashed, F.lit(COIN_SIDES)) / float(COIN_SIDES)
    marked = frame.withColumn("__hash", hashed).withColumn("__coin", coin)
    if task == "regression":
        marked = marked.withColumn("__test", F.col("__coin") < test_size)
    else:
        label = F.col(f"`{label_column}`")
        counts = {row[0]: row[1] for row in frame.groupBy(label).count().collect()}
        small = [value for value, rows in counts.items() if rows < EXACT_SPLIT_BELOW_ROWS]
        if small:
            quota = F.create_map(
                *[
                    part
                    for value in small
                    for part in (F.lit(value), F.lit(small_class_test_rows(counts[value], test_size)))
                ]
            )
            # Ties of the coin are broken by the full hash: the order never depends on partitions.
            rank = F.row_number().over(Window.partitionBy(label).orderBy("__coin", "__hash"))
            small_rows = marked.where(label.isin(small)).withColumn("__test", rank <= quota[label])
            large_rows = marked.where(~label.isin(small)).withColumn("__test", F.col("__coin") < test_size)
            marked = small_rows.unionByName(large_rows)
        else:
            marked = marked.withColumn("__test", F.col("__coin") < test_size)
    train = marked.where(~F.col("__test")).drop("__hash", "__coin", "__test")
    test = marked.where(F.col("__test")).drop("__hash", "__coin", "__test")
    return train, test


def small_class_test_rows(rows: int, test_size: float) -> int:
    """Test rows for a small class: its share, rounded, but at least one and never all of them
    (so the class appears on both sides whenever it has two rows)."""
    if rows < 2:
        return 0
    return min(rows - 1, max(1, round(rows * test_size)))


def write_parquet(frame, uri: str) -> None:
    """Write a folder of Parquet part files; refuses a folder that already exists (never replaced).

    Row groups are kept to `SPLIT_ROW_GROUP_BYTES`. Spark cuts a file into byte ranges and gives
    each row group to the range holding its middle, so a split that one task wrote (a table read as
    one partition) comes back as partitions of similar size only if it has several row groups per
    range; with one, a single partition holds every row. (A split under about 8 MB is still one row
    group: too small for the imbalance to cost much.)
    """
    frame.write.mode("errorifexists").option("parquet.block.size", SPLIT_ROW_GROUP_BYTES).parquet(uri)


def sample_rows(frame, rows: int, seed: int, total: int | None = None) -> pd.DataFrame:
    """`rows` seeded random rows on the driver (all of them for a smaller table); Spark keeps the
    top rows of each partition by a seeded random key, so nothing is sorted in full. `total`, the
    frame's row count when already known, saves a pass over it."""
    from pyspark.sql import functions as F

    if (frame.count() if total is None else total) <= rows:
        return frame.toPandas()
    return frame.orderBy(F.rand(seed)).limit(rows).toPandas()
