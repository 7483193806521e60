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

from tabular_pipeline.errors import PipelineError, one_line

TABLE_SUFFIXES = (".csv", ".parquet")
# The strings `pandas.read_csv` reads as missing by default, as its documentation lists them (the
# constant itself is private); `test_tables` checks pandas still reads each of them as NaN.
PANDAS_NA_VALUES = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip


@dataclass(frozen=True)
class TableLocation:
    """Where a table lives on disk: one file, or a train/test pair of files."""

    single: Path | None = None
    train: Path | None = None
    test: Path | None = None

    @property
    def is_split(self) -> bool:
        return self.train is not None


def locate_table(path: Path) -> TableLocation:
    """Find the table at `path`: a .csv/.parquet file, or a folder with train and test files.

    A folder that holds exactly one table file (as `download` logs it) counts as that file.

    Args:
        path: a local file or folder.

    Returns:
        The location of the table.
    """
    if not path.exists():
        raise PipelineError(
            f"data path {path} does not exist; expected a .csv file or a folder with train.csv and test.csv"
        )
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
    raise PipelineError(f"folder {path} holds {found}; expected train.csv and test.csv (or a single .csv file)")


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
        first_line = one_line(error)
        raise PipelineError(
            f"data file {path.name} is not a well-formed CSV ({first_line}); expected the same number of fields on "
            "every row"
        ) from None
    except UnicodeDecodeError:
        raise PipelineError(f"data file {path.name} is not UTF-8 text; expected a UTF-8 encoded CSV") from None
    except (OSError, ValueError) as error:
        raise PipelineError(
            f"data file {path.name} could not be read ({one_line(error)}); expected a readable CSV or Parquet file"
        ) from None


def pandas_like_csv_options():
    """pyarrow CSV conversion that treats missing values as pandas does: empty cells and pandas'
    NA spellings are null in every column (text too), and only true/false words are booleans."""
    import pyarrow.csv as pacsv

    return pacsv.ConvertOptions(
        null_values=list(PANDAS_NA_VALUES),
        strings_can_be_null=True,
        true_values=["True", "TRUE", "true"],
        false_values=["False", "FALSE", "false"],
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
    # pyarrow keeps duplicate names and reads non-UTF-8 text as binary; pandas mangles the former
    # and refuses the latter.
    if len(set(table.column_names)) != table.num_columns or any(
        pa.types.is_binary(field.type) for field in table.schema
    ):
        return pd.read_csv(path, engine="c", low_memory=False)
    for index, field in enumerate(table.schema):
        if pa.types.is_temporal(field.type):
            table = table.set_column(
                index,
                field.name,
                pacsv.read_csv(
                    path,
                    convert_options=pacsv.ConvertOptions(
                        include_columns=[field.name],
                        column_types={field.name: pa.string()},
                        null_values=options.null_values,
                        strings_can_be_null=True,
                    ),
                ).column(0),
            )
    frame = table.to_pandas()
    for name in frame.select_dtypes(include="object").columns:
        values = frame[name].to_numpy()
        frame[name] = np.where(pd.isna(values), np.nan, values)
    return frame
