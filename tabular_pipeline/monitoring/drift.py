"""Drift of a scored table against the training profile, from counts on the profile's bins.

Counts are summed batch by batch (the pandas engine never holds the table) or come from one
aggregation on a Spark cluster; both give the same numbers, so both engines give the same scores.

Per column: the population stability index (PSI) between the training and the scored shares on
the profile's bins (numbers: deciles; categories: the training's top values plus "other"), the
change in missing share, the share of values the training never showed, and a distance as
Evidently measures it for references over 1,000 rows: Jensen-Shannon for categories, Wasserstein
divided by the training spread for numbers. Per table: the share of columns that drifted.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tabular_pipeline.monitoring.profile import OTHER, VALUE_CLIP, bin_index, category_text

# Shares are floored before the logarithm, so an empty bin gives a large but finite PSI.
SHARE_FLOOR = 1e-4
# PSI of a small sample is noisy (20 rows from the training distribution score about 0.45 on ten
# bins): a column's PSI is judged only with at least this many present values per bin.
MIN_ROWS_PER_BIN = 10
# The missing share is judged on all rows, present or not, so a column that empties is still caught:
# at 100 rows its noise (about 0.02 at a 5% share) stays well under the default rise of 0.1.
MIN_ROWS_FOR_MISSING = 100


def psi(expected: list[float], actual: list[float]) -> float:
    """The population stability index of two share vectors over the same bins."""
    total = 0.0
    for p, q in zip(expected, actual, strict=True):
        p, q = max(p, SHARE_FLOOR), max(q, SHARE_FLOOR)
        total += (q - p) * math.log(q / p)
    return total


def js_distance(expected: list[float], actual: list[float]) -> float:
    """The Jensen-Shannon distance (natural log, so 0 to sqrt(ln 2)) of two share vectors."""
    p, q = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    p, q = p / p.sum(), q / q.sum()
    middle = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        present = a > 0
        return float(np.sum(a[present] * np.log(a[present] / middle[present])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def wasserstein(points_a, weights_a, points_b, weights_b) -> float:
    """The Wasserstein-1 distance between two weighted sets of points: the area between their
    cumulative distributions."""
    points = np.concatenate([points_a, points_b]).astype(float)
    order = np.argsort(points, kind="mergesort")
    share_a = np.concatenate([np.asarray(weights_a, float) / np.sum(weights_a), np.zeros(len(points_b))])[order]
    share_b = np.concatenate([np.zeros(len(points_a)), np.asarray(weights_b, float) / np.sum(weights_b)])[order]
    gaps = np.diff(points[order])
    return float(np.sum(np.abs(np.cumsum(share_a) - np.cumsum(share_b))[:-1] * gaps))


def bin_points(edges: list[float], tail_means: list[float]) -> np.ndarray:
    """Where each bin's values are taken to lie: the middle of an inner bin, the mean of an open one."""
    inner = [(low + high) / 2 for low, high in zip(edges, edges[1:], strict=False)]
    return np.asarray([tail_means[0], *inner, tail_means[1]], dtype=float)


def reference_tails(spec: dict) -> tuple[list[float], float]:
    """The training's open-bin means and spread; a version 1 profile has neither, so its 5% and
    95% quantiles and its interquartile spread stand in for them."""
    if "tail_means" in spec:
        return spec["tail_means"], spec["std"]
    quantiles = spec["quantiles"]
    spread = (quantiles["0.75"] - quantiles["0.25"]) / 1.349  # the standard deviation of a normal
    return [quantiles["0.05"], quantiles["0.95"]], spread


@dataclass
class ColumnCounts:
    """What was counted of one column so far."""

    rows: int = 0
    missing: int = 0
    bins: np.ndarray | None = None  # numbers: one count per profile bin
    tail_sums: np.ndarray | None = None  # numbers: the sums of the values in the two open bins
    values: Counter = field(default_factory=Counter)  # categories: count per text value


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift figures and whether they cross the thresholds."""

    column: str
    kind: str
    psi: float
    missing_train: float
    missing_now: float
    other_share_excess: float  # how far the share of values beyond training's top ones rose above training's
    labels: list[str]
    train_shares: list[float]
    now_shares: list[float]
    drifted: bool
    judged: bool = True  # False: too few rows to tell drift from noise on either rule
    distance: float = 0.0  # Jensen-Shannon (categories) or normalized Wasserstein (numbers)

    @property
    def distance_name(self) -> str:
        return "js" if self.kind == "category" else "wasserstein"

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
                index = bin_index(present, spec["edges"])
                bins = np.bincount(index, minlength=len(spec["edges"]) + 1)
                clipped = np.clip(present, -VALUE_CLIP, VALUE_CLIP)
                tails = np.array([clipped[index == 0].sum(), clipped[index == len(spec["edges"])].sum()])
                counts.bins = bins if counts.bins is None else counts.bins + bins
                counts.tail_sums = tails if counts.tail_sums is None else counts.tail_sums + tails
            else:
                text = category_text(series, spec.get("boolean", False))
                counts.missing += len(series) - len(text)
                counts.values.update(text.value_counts().to_dict())

    def set_counts(
        self,
        name: str,
        rows: int,
        missing: int,
        bins: list[int] | None,
        values: dict[str, int],
        tail_sums: list[float] | None = None,
    ) -> None:
        """Counts made elsewhere (a Spark aggregation) for one column."""
        self.counts[name] = ColumnCounts(
            rows,
            missing,
            None if bins is None else np.asarray(bins),
            None if tail_sums is None else np.asarray(tail_sums, dtype=float),
            Counter(values),
        )

    def result(self, thresholds: dict[str, float]) -> list[ColumnDrift]:
        """Every profiled column's drift: drifted columns first, then by PSI."""
        drifts = [self._column(name, spec, thresholds) for name, spec in self.profile["columns"].items()]
        return sorted(drifts, key=lambda drift: (not drift.drifted, -drift.psi, drift.column))

    def _column(self, name: str, spec: dict, thresholds: dict[str, float]) -> ColumnDrift:
        counts = self.counts[name]
        present = max(counts.rows - counts.missing, 0)
        missing_now = counts.missing / counts.rows if counts.rows else 0.0
        if spec["kind"] == "number":
            labels = bin_labels(spec["edges"])
            train = list(spec["shares"])
            bins = counts.bins if counts.bins is not None else np.zeros(len(train))
            now = (bins / present).tolist() if present else [0.0] * len(train)
            other_share_excess = 0.0
            distance = number_distance(spec, bins, counts.tail_sums) if present else 0.0
        else:
            known = list(spec["top"])
            labels = [*known, OTHER]
            train = [*spec["top"].values(), spec["other"]]
            seen = [counts.values.get(value, 0) for value in known]
            rest = present - sum(seen)
            now = [count / present for count in [*seen, rest]] if present else [0.0] * len(labels)
            # Values beyond the stored top values, above the share such values had in training: new ones.
            other_share_excess = max(0.0, rest / present - spec["other"]) if present else 0.0
            distance = js_distance(train, now) if present and sum(train) > 0 else 0.0
        score = psi(train, now) if present else 0.0
        psi_judged = present >= MIN_ROWS_PER_BIN * len(labels)
        missing_judged = counts.rows >= MIN_ROWS_FOR_MISSING
        distance_name = "js" if spec["kind"] == "category" else "wasserstein"
        crossed = (
            (psi_judged and score >= thresholds["psi"])
            or (missing_judged and missing_now - spec["missing"] >= thresholds["missing"])
            or (psi_judged and distance_name in thresholds and distance >= thresholds[distance_name])
        )
        return ColumnDrift(
            name,
            spec["kind"],
            score,
            spec["missing"],
            missing_now,
            other_share_excess,
            labels,
            train,
            now,
            crossed,
            psi_judged or missing_judged,
            distance,
        )


def number_distance(spec: dict, bins: np.ndarray, tail_sums: np.ndarray | None) -> float:
    """The Wasserstein distance between the training's and the scored values of a number column,
    divided by the training's standard deviation.

    Both sides are points on the profile's bins: the middle of each inner bin, and the mean of the
    values in each open-ended bin (the training's from the profile, the scored table's from the sums
    counted), so values far beyond the training's range weigh by how far they are.
    """
    if not spec["edges"]:
        return 0.0
    reference_tail, spread = reference_tails(spec)
    tails = tail_sums if tail_sums is not None else np.zeros(2)
    ends = (0, len(bins) - 1)
    scored_tail = [tails[side] / bins[end] if bins[end] else reference_tail[side] for side, end in enumerate(ends)]
    distance = wasserstein(
        bin_points(spec["edges"], reference_tail), spec["shares"], bin_points(spec["edges"], scored_tail), bins
    )
    return distance / spread if spread > 0 else distance


def dataset_drift(drifts: list[ColumnDrift], share: float) -> tuple[float, bool]:
    """The share of columns that drifted, and whether it reaches `share` (the table has drifted)."""
    drifted = sum(drift.drifted for drift in drifts) / len(drifts) if drifts else 0.0
    return drifted, bool(drifts) and drifted >= share


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
