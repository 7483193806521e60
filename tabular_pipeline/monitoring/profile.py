"""The training profile a model carries: per feature its type, missing share, and for numbers
quantiles plus shares on decile bins, for categories the top values and their shares.

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
PROFILE_VERSION = 1
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# Inner bin edges at the deciles: ten bins of about equal training share.
EDGE_QUANTILES = tuple(np.round(np.arange(0.1, 1.0, 0.1), 2))
TOP_CATEGORIES = 50
OTHER = "(other)"


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


def bin_index(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Each value's bin: how many edges are at or below it (0 .. len(edges))."""
    return np.searchsorted(np.asarray(edges, dtype=float), values, side="right")


def number_profile(series: pd.Series) -> dict:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    finite = values[~np.isnan(values)]
    if not finite.size:
        return {"kind": "number", "missing": 1.0, "edges": [], "shares": [1.0], "quantiles": {}}
    edges = sorted({float(edge) for edge in np.quantile(finite, EDGE_QUANTILES)})
    counts = np.bincount(bin_index(finite, edges), minlength=len(edges) + 1)
    return {
        "kind": "number",
        "missing": float(np.isnan(values).mean()),
        "edges": edges,
        "shares": (counts / finite.size).tolist(),
        "quantiles": {f"{q:g}": float(np.quantile(finite, q)) for q in QUANTILES},
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


def training_profile(features: pd.DataFrame) -> dict:
    """The profile of the training split's features (the columns the model learns from).

    Args:
        features: training rows without the label, only the kept columns.

    Returns:
        A JSON-ready dict: `version`, `rows`, and `columns` by name.
    """
    columns = {
        str(name): number_profile(series) if is_number(series) else category_profile(series)
        for name, series in features.items()
    }
    return {"version": PROFILE_VERSION, "rows": int(len(features)), "columns": columns}


def load_profile(model_dir: Path) -> dict | None:
    """The training profile inside a downloaded model, or None for a model logged without one."""
    import json

    path = model_dir / "artifacts" / PROFILE_FILE
    return json.loads(path.read_text()) if path.is_file() else None
