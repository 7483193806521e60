"""Fingerprints of table rows that do not depend on which engine read the table: how the promotion
gate finds the rows of a candidate's test split that the champion trained on.

A row's fingerprint is a 64-bit hash of its values in the named columns (sorted by name), each
value first put in a canonical form: numbers as float64 (so 3 and 3.0 and -0.0 and 0.0 agree),
booleans as the text "true"/"false" (Spark and pandas spell them differently), text as itself, and
any missing value as one marker. Two readers' differences are undone too: the NA spellings pandas
reads as missing ("NA", "null", "None", ...) count as missing when Spark kept them as text, and a text
column whose every value is an ISO date or timestamp (which Spark's CSV reader types as a date or a
timestamp, and pandas keeps as text) is compared as timestamps. pandas' `hash_pandas_object`
(SipHash with a fixed key) does the hashing, so the same row gives the same number in every process and on both engines.
"""

from __future__ import annotations

import datetime
import json

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from tabular_pipeline.data.tables import PANDAS_NA_VALUES

ROW_HASH_COLUMN = "row_hash"
# Schema metadata of a row-hash file: the columns hashed, and the kind of each.
COLUMNS_KEY = b"tabular_pipeline.row_hash.columns"
NUMBER, TEXT = "number", "text"
_MISSING = "\x00missing"
_NA_SPELLINGS = frozenset(PANDAS_NA_VALUES)


def column_kind(series: pd.Series) -> str:
    """ "number" for integer, float and decimal columns, "text" for everything else (booleans included)."""
    if ptypes.is_bool_dtype(series):
        return TEXT
    if ptypes.is_numeric_dtype(series):
        return NUMBER
    values = series.dropna()
    # Spark's decimals arrive in pandas as `decimal.Decimal` objects.
    if len(values) and all(type(value).__name__ == "Decimal" for value in values.head(100)):
        return NUMBER
    return TEXT


def column_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Every column's kind (`column_kind`), by name."""
    return {str(name): column_kind(frame[name]) for name in frame.columns}


def _canonical(series: pd.Series, kind: str) -> pd.Series:
    if kind == NUMBER:
        values = pd.to_numeric(series, errors="coerce").astype("float64").to_numpy(copy=True)
        # -0.0 + 0.0 is 0.0; every missing value becomes the one NaN np.nan is.
        return pd.Series(np.where(np.isnan(values), np.nan, values + 0.0))
    if _one_value_per_distinct(series):
        # A table holds far fewer distinct texts than cells: each is put in canonical form once.
        codes, distinct = pd.factorize(series, use_na_sentinel=True)
        texts = [_text(value) for value in distinct] + [_MISSING]  # code -1 (missing) takes the last
        if _as_timestamps(texts) is None:
            return pd.Series(np.array(texts, dtype=object)[codes])
        # A column of ISO dates or timestamps is parsed whole, value by value, as before: pandas
        # reads a timestamp without an offset differently after one with an offset, so parsing only
        # the distinct values would change some rows' hashes.
        values = np.array(texts, dtype=object)[codes].tolist()
        return pd.Series(_as_timestamps(values), dtype=object)
    values = [_text(value) for value in series.to_numpy()]
    return pd.Series(_as_timestamps(values) or values, dtype=object)


def _one_value_per_distinct(series: pd.Series) -> bool:
    """Whether canonicalising the column's distinct values gives what canonicalising each value
    does: booleans, and text columns and text categories. Not a mixed object column (1 and True
    compare equal and would be merged), nor categories of numbers, dates or durations (the
    value-by-value path sees them as `to_numpy` gives them, e.g. whole-number categories with a
    missing value as floats, "1.0", where the distinct values are ints, "1")."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return ptypes.infer_dtype(series.cat.categories, skipna=True) in ("string", "empty")
    return ptypes.is_bool_dtype(series) or ptypes.infer_dtype(series, skipna=True) in ("string", "empty")


def _text(value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # NaN, pd.NA, NaT, datetime64 NaT
        return _MISSING
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, datetime.date | np.datetime64):
        return pd.Timestamp(value).isoformat()
    value = str(value)
    return _MISSING if value in _NA_SPELLINGS else value


def _as_timestamps(values: list[str]) -> list[str] | None:
    """The values as canonical timestamps when every present one is an ISO date or timestamp, else None."""
    present = [value for value in values if value != _MISSING]
    # A cheap look first: ISO dates start with four digits and a dash.
    if not present or not all(len(v) >= 10 and v[:4].isdigit() and v[4] == "-" for v in present):
        return None
    parsed = pd.to_datetime(pd.Series(present), format="ISO8601", errors="coerce")
    if parsed.isna().any():
        return None
    stamps = iter(parsed.map(pd.Timestamp.isoformat))
    return [value if value == _MISSING else next(stamps) for value in values]


def row_hashes(frame: pd.DataFrame, kinds: dict[str, str]) -> np.ndarray:
    """The fingerprint of every row of `frame` over the columns named in `kinds`, each hashed as its kind.

    Args:
        frame: the rows; it must hold every column of `kinds`.
        kinds: column name -> "number" or "text" (from `column_kinds`, usually of another table).

    Returns:
        One uint64 per row, in the frame's order.
    """
    names = sorted(kinds)
    canonical = pd.DataFrame({name: _canonical(frame[name], kinds[name]) for name in names})
    return pd.util.hash_pandas_object(canonical, index=False).to_numpy(dtype=np.uint64)


def hash_table(frame: pd.DataFrame):
    """The fingerprints of `frame`'s rows over all its columns, as an Arrow table that records the
    columns and their kinds in its metadata (what a training run logs of its training split)."""
    import pyarrow as pa

    kinds = column_kinds(frame)
    table = pa.table({ROW_HASH_COLUMN: pa.array(row_hashes(frame, kinds), type=pa.uint64())})
    return table.replace_schema_metadata({COLUMNS_KEY: json.dumps(kinds).encode()})


def recorded_kinds(schema) -> dict[str, str] | None:
    """The columns and kinds a row-hash table was made over (None when it records none)."""
    raw = (schema.metadata or {}).get(COLUMNS_KEY)
    return json.loads(raw) if raw else None
