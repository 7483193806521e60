"""Deciding which raw columns a model should learn from, and saying why the others are left out."""

from __future__ import annotations

import re

import pandas as pd
from pandas.api import types as ptypes

from tabular_pipeline.errors import PipelineError

_ID_NAME = re.compile(r"(^|[_\-\s])(id|uuid|guid|key|index|idx)$", re.IGNORECASE)
# A text column with (nearly) a different value on every row is a key, not a category.
TEXT_ID_UNIQUE_SHARE = 0.95
MIN_ROWS_FOR_ID_RULES = 20


def has_id_name(name: str) -> bool:
    """Whether a column is named like a key: `id`, `customer_id`, `order-key`, `row index`..."""
    return bool(_ID_NAME.search(name))


def drop_reason(series: pd.Series, name: str) -> str | None:
    """Why a feature column should be dropped, or None to keep it.

    Args:
        series: the column's training values.
        name: the column name.

    Returns:
        "all values missing", "constant", "identifier-like (...)" or None.
    """
    values = series.dropna()
    if values.empty:
        return "all values missing"
    if series.nunique(dropna=False) <= 1:
        return "constant"
    rows = len(series)
    if rows < MIN_ROWS_FOR_ID_RULES:
        return None
    distinct = values.nunique()
    is_text = not ptypes.is_numeric_dtype(series) and not ptypes.is_bool_dtype(series)
    if is_text and distinct >= TEXT_ID_UNIQUE_SHARE * rows:
        return "identifier-like (a different text value on nearly every row)"
    # Numeric keys are complete and unique: a value on every row, never twice.
    if ptypes.is_numeric_dtype(series) and not ptypes.is_bool_dtype(series) and distinct == len(values) == rows:
        integral = bool((values % 1 == 0).all())
        if integral and has_id_name(name):
            return "identifier-like (unique whole numbers in a column named like an id)"
        if integral and values.is_monotonic_increasing and (values.diff().dropna() == 1).all():
            return "identifier-like (a row counter)"
    return None


def screen_columns(features: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """Split feature columns into those to learn from and those to drop, with reasons.

    Args:
        features: the training features (label removed).

    Returns:
        (kept column names in order, {dropped column: reason}).
    """
    dropped = {str(name): reason for name, series in features.items() if (reason := drop_reason(series, str(name)))}
    kept = [str(name) for name in features.columns if str(name) not in dropped]
    if not kept:
        detail = "; ".join(f"{name}: {reason}" for name, reason in list(dropped.items())[:5])
        raise PipelineError(f"no usable feature column is left ({detail}); expected at least one informative feature")
    return kept, dropped
