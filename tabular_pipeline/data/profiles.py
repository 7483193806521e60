"""Describing a table for a person and for the model's schema: dtypes, missing shares, distinct counts."""

from __future__ import annotations

import pandas as pd


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
