"""Loading, validating and splitting the user's table.

A table arrives as one CSV/Parquet file (split here into train and test) or as a folder holding
`train.csv` and `test.csv` (already split). Every check raises `PipelineError` with one line that
names what is wrong and what was expected.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pandas.api import types as ptypes

from tabular_pipeline.errors import PipelineError

TABLE_SUFFIXES = (".csv", ".parquet")
TASKS = ("binary", "multiclass", "regression")
# A numeric label with at most this many distinct integer values is taken as classes.
MAX_CLASSES_FOR_NUMERIC_LABEL = 20


@dataclass(frozen=True)
class TableLocation:
    """Where a table lives on disk: one file, or a train/test pair of files."""

    single: Path | None = None
    train: Path | None = None
    test: Path | None = None

    @property
    def is_split(self) -> bool:
        return self.train is not None


@dataclass(frozen=True)
class Splits:
    """Train and test frames with the label column still inside."""

    train: pd.DataFrame
    test: pd.DataFrame


def locate_table(path: Path) -> TableLocation:
    """Find the table at `path`: a .csv/.parquet file, or a folder with train and test files.

    A folder that holds exactly one table file (as `download` logs it) counts as that file.

    Args:
        path: a local file or folder.

    Returns:
        The location of the table.
    """
    if not path.exists():
        raise PipelineError(f"data path {path} does not exist; expected a .csv file or a folder with train.csv and test.csv")
    if path.is_file():
        if path.suffix.lower() not in TABLE_SUFFIXES:
            raise PipelineError(f"data file {path.name} is not a table; expected a .csv or .parquet file")
        return TableLocation(single=path)
    for suffix in TABLE_SUFFIXES:
        train, test = path / f"train{suffix}", path / f"test{suffix}"
        if train.is_file() and test.is_file():
            return TableLocation(train=train, test=test)
    tables = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES)
    if len(tables) == 1:
        return TableLocation(single=tables[0])
    found = ", ".join(p.name for p in tables) or "no table files"
    raise PipelineError(
        f"folder {path} holds {found}; expected train.csv and test.csv (or a single .csv file)"
    )


def read_table(path: Path) -> pd.DataFrame:
    """Read one CSV or Parquet file, turning parser failures into one-line errors.

    Args:
        path: a .csv or .parquet file.

    Returns:
        The table, with integer feature columns as read (see `harmonise_dtypes`).
    """
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.stat().st_size == 0:
            raise PipelineError(f"data file {path.name} is empty; expected a CSV with a header row and data rows")
        with path.open("rb") as handle:
            head = handle.read(8192)
        if b"\x00" in head:
            raise PipelineError(f"data file {path.name} is binary, not CSV text; expected a comma-separated text file")
        return read_csv_with_arrow(path)
    except PipelineError:
        raise
    except pd.errors.EmptyDataError:
        raise PipelineError(f"data file {path.name} is empty; expected a CSV with a header row and data rows") from None
    except (pd.errors.ParserError, csv.Error) as error:
        first_line = str(error).strip().splitlines()[0]
        raise PipelineError(f"data file {path.name} is not a well-formed CSV ({first_line}); expected the same number of fields on every row") from None
    except UnicodeDecodeError:
        raise PipelineError(f"data file {path.name} is not UTF-8 text; expected a UTF-8 encoded CSV") from None
    except (OSError, ValueError) as error:
        raise PipelineError(f"data file {path.name} could not be read ({error}); expected a readable CSV or Parquet file") from None


def pandas_like_csv_options():
    """pyarrow CSV conversion that treats missing values as pandas does: empty cells and pandas'
    NA spellings are null in every column (text too), and only true/false words are booleans."""
    import pyarrow.csv as pacsv
    from pandas._libs.parsers import STR_NA_VALUES

    return pacsv.ConvertOptions(
        null_values=sorted(STR_NA_VALUES), strings_can_be_null=True,
        true_values=["True", "TRUE", "true"], false_values=["False", "FALSE", "false"],
    )


def read_csv_with_arrow(path: Path) -> pd.DataFrame:
    """Read a CSV with pyarrow's parallel parser, giving the frame pandas' own reader would give.

    Empty cells and pandas' NA spellings are missing (NaN, also in text columns), dates stay text,
    and "0"/"1" stay numbers. Anything pyarrow refuses or reads differently from pandas (ragged
    rows, bad encoding, duplicate names) goes through pandas' C reader, whose errors
    `read_table` turns into one line.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    options = pandas_like_csv_options()
    try:
        table = pacsv.read_csv(path, convert_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pd.read_csv(path, engine="c", low_memory=False)
    # pyarrow keeps duplicate names and reads non-UTF-8 text as binary; pandas mangles the former and refuses the latter.
    if len(set(table.column_names)) != table.num_columns or any(pa.types.is_binary(field.type) for field in table.schema):
        return pd.read_csv(path, engine="c", low_memory=False)
    for index, field in enumerate(table.schema):
        if pa.types.is_temporal(field.type):
            table = table.set_column(index, field.name, pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                include_columns=[field.name], column_types={field.name: pa.string()}, null_values=options.null_values,
                strings_can_be_null=True)).column(0))
    frame = table.to_pandas()
    for name in frame.select_dtypes(include="object").columns:
        values = frame[name].to_numpy()
        frame[name] = np.where(pd.isna(values), np.nan, values)
    return frame


def validate_table(table: pd.DataFrame, label_column: str, name: str = "table") -> None:
    """Check that the table has rows, the label column, a usable label and at least one feature.

    Args:
        table: the loaded table.
        label_column: the name of the target column.
        name: how to call the table in messages (e.g. "train.csv").
    """
    if table.shape[0] == 0:
        raise PipelineError(f"{name} has a header but no data rows; expected at least one row")
    if label_column not in table.columns:
        shown = ", ".join(map(str, table.columns[:10])) + (", ..." if table.shape[1] > 10 else "")
        raise PipelineError(f"label column '{label_column}' is not in {name} (columns: {shown}); set -P label_column=<name>")
    if table[label_column].isna().all():
        raise PipelineError(f"label column '{label_column}' of {name} is empty; expected a value on every row")
    if table.shape[1] < 2:
        raise PipelineError(f"{name} has only the label column; expected at least one feature column")
    features = table.drop(columns=[label_column])
    if features.isna().all().all():
        raise PipelineError(f"every feature of {name} is missing (all NaN); expected at least one feature with values")


def validate_split_columns(train: pd.DataFrame, test: pd.DataFrame) -> None:
    """Check that train and test hold the same columns."""
    if list(train.columns) != list(test.columns):
        only_train = sorted(set(train.columns) - set(test.columns))
        only_test = sorted(set(test.columns) - set(train.columns))
        detail = f"only in train: {only_train}; only in test: {only_test}" if only_train or only_test else "same names, different order"
        raise PipelineError(f"train.csv and test.csv have different columns ({detail}); expected identical headers")


def detect_task(label: pd.Series) -> str:
    """Guess the learning task from the label column.

    Args:
        label: the target values (NaN allowed; they are ignored).

    Returns:
        "binary", "multiclass" or "regression".
    """
    values = label.dropna()
    distinct = values.nunique()
    if ptypes.is_bool_dtype(values) or not ptypes.is_numeric_dtype(values):
        return "binary" if distinct <= 2 else "multiclass"
    integral = bool((values.astype(float) % 1 == 0).all())
    if integral and distinct <= MAX_CLASSES_FOR_NUMERIC_LABEL:
        return "binary" if distinct <= 2 else "multiclass"
    return "regression"


def resolve_task(requested: str, label: pd.Series) -> str:
    """Return the requested task, or the detected one when `requested` is "auto" or empty."""
    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return detect_task(label)
    if requested == "classification":
        return "binary" if label.dropna().nunique() <= 2 else "multiclass"
    if requested not in TASKS:
        raise PipelineError(f"task '{requested}' is not known; expected auto, binary, multiclass or regression")
    return requested


def check_label_for_task(label: pd.Series, task: str, label_column: str) -> None:
    """Refuse labels the task cannot learn from: one class only, or text for regression."""
    distinct = label.dropna().nunique()
    if task != "regression" and distinct < 2:
        raise PipelineError(f"label column '{label_column}' has a single class; expected at least two classes")
    if task == "regression" and not ptypes.is_numeric_dtype(label):
        raise PipelineError(f"label column '{label_column}' is not numeric; expected numbers for a regression task")


def harmonise_dtypes(table: pd.DataFrame, label_column: str) -> pd.DataFrame:
    """Make feature dtypes safe to serve: integers become float64 and text becomes `object`.

    Integer columns are declared double so that a missing value at prediction time is valid input
    (MLflow's schema refuses NaN in a column declared long).

    Args:
        table: the raw table.
        label_column: the target column, left untouched.

    Returns:
        A new frame; the input is not modified.
    """
    converted = {}
    for column in table.columns:
        if column == label_column:
            continue
        series = table[column]
        if ptypes.is_integer_dtype(series) and not ptypes.is_bool_dtype(series):
            converted[column] = series.astype("float64")
        elif isinstance(series.dtype, pd.StringDtype):
            converted[column] = series.astype(object)
    return table.assign(**converted) if converted else table


def drop_unlabelled_rows(table: pd.DataFrame, label_column: str) -> pd.DataFrame:
    """Remove rows whose label is missing; they can be neither learned from nor scored."""
    return table[table[label_column].notna()].reset_index(drop=True)


def split_table(table: pd.DataFrame, label_column: str, test_size: float, seed: int, task: str) -> Splits:
    """Split one table into train and test, stratified for classification.

    Args:
        table: the whole labelled table.
        label_column: the target column.
        test_size: the test fraction, strictly between 0 and 1.
        seed: the random seed of the split.
        task: "binary", "multiclass" or "regression".

    Returns:
        The train and test frames.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise PipelineError(f"test_size is {test_size}; expected a fraction between 0 and 1")
    label = table[label_column]
    stratify = None
    if task != "regression":
        counts = label.value_counts()
        n_test = int(round(test_size * len(table)))
        # Stratification needs two rows of every class and room for every class in the test set.
        if counts.min() >= 2 and n_test >= counts.size and len(table) - n_test >= counts.size:
            stratify = label
    if len(table) < 2:
        raise PipelineError(f"the table has {len(table)} row; expected at least 2 rows to split into train and test")
    train, test = train_test_split(table, test_size=test_size, random_state=seed, stratify=stratify)
    return Splits(train=train.reset_index(drop=True), test=test.reset_index(drop=True))


def prepare_splits(
    location: TableLocation, label_column: str, test_size: float, seed: int, task: str
) -> tuple[Splits, str]:
    """Load, validate and split the table at `location`, and settle the task.

    Args:
        location: where the table lives.
        label_column: the target column.
        test_size: the test fraction when the table is a single file.
        seed: the split's random seed.
        task: "auto" or one of `TASKS`.

    Returns:
        The validated splits (dtypes harmonised) and the task.
    """
    if location.is_split:
        train, test = read_table(location.train), read_table(location.test)
        validate_table(train, label_column, location.train.name)
        validate_table(test, label_column, location.test.name)
        validate_split_columns(train, test)
        train, test = drop_unlabelled_rows(train, label_column), drop_unlabelled_rows(test, label_column)
        resolved = resolve_task(task, train[label_column])
        check_label_for_task(train[label_column], resolved, label_column)
        splits = Splits(train=train, test=test)
    else:
        table = read_table(location.single)
        validate_table(table, label_column, location.single.name)
        table = drop_unlabelled_rows(table, label_column)
        resolved = resolve_task(task, table[label_column])
        check_label_for_task(table[label_column], resolved, label_column)
        splits = split_table(table, label_column, test_size, seed, resolved)
    return (
        Splits(
            train=harmonise_dtypes(splits.train, label_column),
            test=harmonise_dtypes(splits.test, label_column),
        ),
        resolved,
    )


def profile_table(table: pd.DataFrame, label_column: str) -> dict:
    """Summarise a table for a person: rows, and per column dtype, missing share and distinct count.

    Args:
        table: the table to describe.
        label_column: the target column (its class counts are included for classification).

    Returns:
        A JSON-serialisable dict.
    """
    columns = {
        str(name): {
            "dtype": str(series.dtype),
            "missing_fraction": round(float(series.isna().mean()), 6),
            "distinct": int(series.nunique()),
        }
        for name, series in table.items()
    }
    label_counts = table[label_column].value_counts().head(50)
    return {
        "rows": int(table.shape[0]),
        "columns": columns,
        "label_counts": {str(k): int(v) for k, v in label_counts.items()},
    }


def table_schema(table: pd.DataFrame, label_column: str, task: str) -> dict:
    """Describe the columns a model trained on `table` expects.

    Args:
        table: the training table.
        label_column: the target column.
        task: the learning task.

    Returns:
        A JSON-serialisable dict with the label, task, and feature names and dtypes.
    """
    return {
        "label_column": label_column,
        "task": task,
        "features": {str(n): str(t) for n, t in table.drop(columns=[label_column]).dtypes.items()},
    }
