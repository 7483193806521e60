"""The training profile a model carries: per feature its type, missing share, and for numbers
quantiles plus shares on decile bins, for categories the top values and their shares; and, from
version 2, the `performance` section `monitoring.calibration` builds from the test split.

The bins are fixed at training time (the training split's deciles), so any later table is
counted on the same bins, batch by batch or on a Spark cluster, and compared with PSI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

PROFILE_ARTIFACT = "monitoring_profile"
PROFILE_FILE = "monitoring_profile.json"
PROFILE_VERSION = 2
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# Inner bin edges at the deciles: ten bins of about equal training share.
EDGE_QUANTILES = tuple(np.round(np.arange(0.1, 1.0, 0.1), 2))
TOP_CATEGORIES = 50
OTHER = "(other)"
# ±inf counts as a present value; it is clipped here wherever values are summed, so means stay finite.
VALUE_CLIP = 1e15
# Whole numbers up to this size are written without a decimal point when they name a class.
WHOLE_LABEL_LIMIT = 1e15


def is_number(series: pd.Series) -> bool:
    """Numbers are profiled on bins; text, categories and booleans by their values."""
    return ptypes.is_numeric_dtype(series) and not ptypes.is_bool_dtype(series)


def is_boolean(series: pd.Series) -> bool:
    """A column of True/False values (possibly with gaps, which make pandas hold it as objects)."""
    present = series.dropna()
    return bool(ptypes.is_bool_dtype(present) or (len(present) > 0 and present.map(type).eq(bool).all()))


def category_text(series: pd.Series, boolean: bool) -> pd.Series:
    """Values as the text both engines count them by: booleans as `true`/`false` (as Spark casts
    them), anything else as its string; missing values dropped."""
    present = series.dropna()
    if boolean:
        return present.astype(bool).map({True: "true", False: "false"})
    return present.astype(str)


def label_text(values) -> pd.Series:
    """Class labels as the text both engines compare them by: booleans `true`/`false`, whole
    numbers without a decimal point (a label read as 1.0 beside missing values is class 1),
    anything else as its string; missing values stay missing (None).

    Args:
        values: labels or predictions (a Series, an array or a list).

    Returns:
        A Series of strings or None, on a fresh 0-based index.
    """
    series = pd.Series(values).reset_index(drop=True)
    if ptypes.is_bool_dtype(series):
        text = series.map({True: "true", False: "false"})
    elif ptypes.is_numeric_dtype(series):
        numbers = series.to_numpy(dtype=float, na_value=np.nan)
        whole = np.isfinite(numbers) & (np.abs(numbers) < WHOLE_LABEL_LIMIT)
        whole[whole] = numbers[whole] == np.floor(numbers[whole])
        written = np.where(whole, np.where(whole, numbers, 0).astype(np.int64).astype(str), series.astype(str))
        text = pd.Series(written).where(~np.isnan(numbers))
    else:
        text = pd.Series(series.astype(object).map(_one_label, na_action="ignore"))
    return text.astype(object).where(text.notna(), None)


def _one_label(value) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | float | np.integer | np.floating):
        return label_text(pd.Series([value], dtype=float)).iloc[0]
    return str(value)


def bin_index(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Each value's bin: how many edges are at or below it (0 .. len(edges))."""
    return np.searchsorted(np.asarray(edges, dtype=float), values, side="right")


def number_profile(series: pd.Series) -> dict:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    present = values[~np.isnan(values)]  # every value but the missing ones, ±inf included
    if not present.size:
        return {"kind": "number", "missing": 1.0, "edges": [], "shares": [1.0], "quantiles": {}}
    edges = sorted({float(edge) for edge in np.quantile(present, EDGE_QUANTILES)})
    bins = bin_index(present, edges)
    counts = np.bincount(bins, minlength=len(edges) + 1)
    clipped = np.clip(present, -VALUE_CLIP, VALUE_CLIP)
    return {
        "kind": "number",
        "missing": float(np.isnan(values).mean()),
        "edges": edges,
        "shares": (counts / present.size).tolist(),
        "quantiles": {f"{q:g}": float(np.quantile(present, q)) for q in QUANTILES},
        # The means of the two open-ended bins and the spread: the Wasserstein distance's reference.
        "tail_means": [float(clipped[bins == end].mean()) if counts[end] else 0.0 for end in (0, len(edges))],
        "std": float(clipped.std()),
    }


def category_profile(series: pd.Series) -> dict:
    boolean = is_boolean(series)
    text = category_text(series, boolean)
    shares = text.value_counts(normalize=True) if len(text) else pd.Series(dtype=float)
    top = shares.head(TOP_CATEGORIES)
    return {
        "kind": "category",
        "boolean": boolean,
        "missing": float(series.isna().mean()),
        "top": {str(value): float(share) for value, share in top.items()},
        "other": float(max(0.0, 1.0 - top.sum())) if len(text) else 0.0,
    }


def training_profile(features: pd.DataFrame, performance: dict | None = None) -> dict:
    """The profile of the training split's features (the columns the model learns from).

    Args:
        features: training rows without the label, only the kept columns.
        performance: the test split's performance section (`calibration.performance_profile`),
            or None for a model whose performance `predict` cannot follow.

    Returns:
        A JSON-ready dict: `version`, `rows`, `columns` by name, and `performance` when given.
    """
    columns = {
        str(name): number_profile(series) if is_number(series) else category_profile(series)
        for name, series in features.items()
    }
    profile = {"version": PROFILE_VERSION, "rows": int(len(features)), "columns": columns}
    return {**profile, "performance": performance} if performance is not None else profile


def load_profile(model_dir: Path) -> dict | None:
    """The training profile inside a downloaded model, or None for a model logged without one."""
    import json

    path = model_dir / "artifacts" / PROFILE_FILE
    return json.loads(path.read_text()) if path.is_file() else None
