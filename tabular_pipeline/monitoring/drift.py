"""Drift of a scored table against the training profile, from counts on the profile's bins.

Counts are summed batch by batch (the pandas engine never holds the table) or come from one
aggregation on a Spark cluster; both give the same numbers, so both engines give the same scores.

Per column: the population stability index (PSI) between the training and the scored shares on
the profile's bins (numbers: deciles; categories: the training's top values plus "other"), the
change in missing share, and the share of values the training never showed.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.monitoring.profile import OTHER, bin_index, category_text

DEFAULT_THRESHOLDS = {"psi": 0.2, "missing": 0.1}
# Shares are floored before the logarithm, so an empty bin gives a large but finite PSI.
SHARE_FLOOR = 1e-4
# PSI of a small sample is noisy (20 rows from the training distribution score about 0.45 on ten
# bins): a column's PSI is judged only with at least this many present values per bin.
MIN_ROWS_PER_BIN = 10
# The missing share is judged on all rows, present or not, so a column that empties is still caught:
# at 100 rows its noise (about 0.02 at a 5% share) stays well under the default rise of 0.1.
MIN_ROWS_FOR_MISSING = 100


def parse_thresholds(text: str) -> dict[str, float]:
    """`psi=0.2;missing=0.1` (either may be left out) as numbers; anything else is one error line."""
    from tabular_pipeline.parameters.strings import parse_param_string

    thresholds = dict(DEFAULT_THRESHOLDS)
    for name, value in parse_param_string(text, "drift_thresholds").items():
        if name not in thresholds:
            raise PipelineError(f"drift_thresholds: unknown threshold '{name}'; expected psi and/or missing")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 100:
            raise PipelineError(
                f"drift_thresholds: {name}={value!r} is not a positive number; expected e.g. psi=0.2;missing=0.1"
            )
        thresholds[name] = float(value)
    return thresholds


def psi(expected: list[float], actual: list[float]) -> float:
    """The population stability index of two share vectors over the same bins."""
    total = 0.0
    for p, q in zip(expected, actual, strict=True):
        p, q = max(p, SHARE_FLOOR), max(q, SHARE_FLOOR)
        total += (q - p) * math.log(q / p)
    return total


@dataclass
class ColumnCounts:
    """What was counted of one column so far."""

    rows: int = 0
    missing: int = 0
    bins: np.ndarray | None = None  # numbers: one count per profile bin
    values: Counter = field(default_factory=Counter)  # categories: count per text value


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift figures and whether they cross the thresholds."""

    column: str
    kind: str
    psi: float
    missing_train: float
    missing_now: float
    unseen_share: float
    labels: list[str]
    train_shares: list[float]
    now_shares: list[float]
    drifted: bool
    judged: bool = True  # False: too few rows to tell drift from noise on either rule

    @property
    def missing_change(self) -> float:
        return self.missing_now - self.missing_train


class DriftCounter:
    """Counts scored batches on the bins of a training profile."""

    def __init__(self, profile: dict):
        self.profile = profile
        self.counts = {name: ColumnCounts() for name in profile["columns"]}

    def add(self, frame: pd.DataFrame) -> None:
        """Count one batch (the model's input columns, as cast for the model)."""
        for name, spec in self.profile["columns"].items():
            if name not in frame.columns:
                continue
            series, counts = frame[name], self.counts[name]
            counts.rows += len(series)
            if spec["kind"] == "number":
                values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
                present = values[~np.isnan(values)]
                counts.missing += len(values) - len(present)
                bins = np.bincount(bin_index(present, spec["edges"]), minlength=len(spec["edges"]) + 1)
                counts.bins = bins if counts.bins is None else counts.bins + bins
            else:
                text = category_text(series, spec.get("boolean", False))
                counts.missing += len(series) - len(text)
                counts.values.update(text.value_counts().to_dict())

    def set_counts(self, name: str, rows: int, missing: int, bins: list[int] | None, values: dict[str, int]) -> None:
        """Counts made elsewhere (a Spark aggregation) for one column."""
        self.counts[name] = ColumnCounts(rows, missing, None if bins is None else np.asarray(bins), Counter(values))

    def result(self, thresholds: dict[str, float]) -> list[ColumnDrift]:
        """Every profiled column's drift, most drifted first."""
        drifts = [self._column(name, spec, thresholds) for name, spec in self.profile["columns"].items()]
        return sorted(drifts, key=lambda drift: (-drift.psi, drift.column))

    def _column(self, name: str, spec: dict, thresholds: dict[str, float]) -> ColumnDrift:
        counts = self.counts[name]
        present = max(counts.rows - counts.missing, 0)
        missing_now = counts.missing / counts.rows if counts.rows else 0.0
        if spec["kind"] == "number":
            labels = bin_labels(spec["edges"])
            train = list(spec["shares"])
            bins = counts.bins if counts.bins is not None else np.zeros(len(train))
            now = (bins / present).tolist() if present else [0.0] * len(train)
            unseen = 0.0
        else:
            known = list(spec["top"])
            labels = [*known, OTHER]
            train = [*spec["top"].values(), spec["other"]]
            seen = [counts.values.get(value, 0) for value in known]
            rest = present - sum(seen)
            now = [count / present for count in [*seen, rest]] if present else [0.0] * len(labels)
            # Values beyond the stored top values, above the share such values had in training: new ones.
            unseen = max(0.0, rest / present - spec["other"]) if present else 0.0
        score = psi(train, now) if present else 0.0
        psi_judged = present >= MIN_ROWS_PER_BIN * len(labels)
        missing_judged = counts.rows >= MIN_ROWS_FOR_MISSING
        crossed = (psi_judged and score >= thresholds["psi"]) or (
            missing_judged and missing_now - spec["missing"] >= thresholds["missing"]
        )
        return ColumnDrift(
            name,
            spec["kind"],
            score,
            spec["missing"],
            missing_now,
            unseen,
            labels,
            train,
            now,
            crossed,
            psi_judged or missing_judged,
        )


def bin_labels(edges: list[float]) -> list[str]:
    """Readable names of the bins between `edges` (the first and last are open-ended)."""
    if not edges:
        return ["all"]
    shown = [f"{edge:.4g}" for edge in edges]
    return [
        f"< {shown[0]}",
        *(f"{low} to {high}" for low, high in zip(shown, shown[1:], strict=False)),
        f">= {shown[-1]}",
    ]
