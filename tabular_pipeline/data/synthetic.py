"""Generated mixed-type tables for scale tests and benchmarks (nothing is ever downloaded).

The table looks like a real customer table: a row id, float and count columns with missing values,
text categories of several cardinalities (with missing values), a flag, and a label that depends on
some of those columns plus noise, so a model has something to learn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabular_pipeline.errors import PipelineError

# Cardinalities cycled through by the categorical columns: a few levels up to an id-like one.
CATEGORY_SIZES = (3, 8, 25, 100, 1000)
KEY_COLUMN = "row_id"
LABEL_COLUMN = "label"


def column_plan(columns: int) -> tuple[int, int, int]:
    """How many float, count and categorical columns a table of `columns` columns gets.

    Three columns are always the row id, the flag and the label; of the rest, 60% are floats,
    10% counts and 30% categories (at least one of each).
    """
    features = columns - 3
    if features < 3:
        raise PipelineError(f"a generated table of {columns} columns was asked for; expected at least 6")
    categorical = max(1, round(features * 0.3))
    counts = max(1, round(features * 0.1))
    return features - categorical - counts, counts, categorical


def make_mixed_table(
    rows: int, columns: int = 30, task: str = "binary", seed: int = 0, missing_fraction: float = 0.05
) -> pd.DataFrame:
    """Generate a labelled table with float, count, categorical and boolean columns.

    Args:
        rows: the number of rows (at least 10).
        columns: the total number of columns, row id and label included.
        task: "binary", "multiclass" (three classes) or "regression".
        seed: the random seed; the same arguments give the same table.
        missing_fraction: the share of missing values in the float, count and categorical columns.

    Returns:
        The table, with `row_id` first and `label` last; categories are pandas `category` columns.
    """
    if rows < 10:
        raise PipelineError(f"a generated table of {rows} rows was asked for; expected at least 10")
    if task not in ("binary", "multiclass", "regression"):
        raise PipelineError(f"task '{task}' is not supported; expected binary, multiclass or regression")
    rng = np.random.default_rng(seed)
    n_float, n_count, n_categorical = column_plan(columns)
    data: dict[str, object] = {KEY_COLUMN: np.arange(rows, dtype=np.int64)}
    floats = rng.standard_normal((rows, n_float))
    score = floats[:, : min(4, n_float)] @ np.array([1.5, -1.0, 0.8, 0.5][: min(4, n_float)])
    for index in range(n_float):
        column = floats[:, index]
        column[rng.random(rows) < missing_fraction] = np.nan
        data[f"num_{index:02d}"] = column
    for index in range(n_count):
        counts = rng.poisson(3 + index, rows).astype(np.float64)
        score += 0.1 * (counts - 3 - index)
        counts[rng.random(rows) < missing_fraction] = np.nan
        data[f"count_{index:02d}"] = counts
    for index in range(n_categorical):
        size = CATEGORY_SIZES[index % len(CATEGORY_SIZES)]
        codes = rng.integers(0, size, rows)
        if index < 2:
            # The first categories carry signal: each level shifts the score by a fixed amount.
            score += np.linspace(-1, 1, size)[codes]
        codes[rng.random(rows) < missing_fraction] = -1
        levels = [f"c{index}_{level}" for level in range(size)]
        data[f"cat_{index:02d}"] = pd.Categorical.from_codes(codes, categories=levels)
    data["flag"] = rng.random(rows) < 0.3
    score += 0.4 * data["flag"] + rng.normal(0, 0.5, rows)
    if task == "regression":
        label = score
    elif task == "binary":
        label = (score > np.median(score)).astype(np.int64)
    else:
        label = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3])).astype(np.int64)
    data[LABEL_COLUMN] = label
    return pd.DataFrame(data)
