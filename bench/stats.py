"""Small pure helpers for the benchmark report: medians, percentiles, ratios and Markdown."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """The median; a benchmark with no sample is a bug, so an empty list raises."""
    if not values:
        raise ValueError("no samples")
    return float(statistics.median(values))


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of the samples."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(share * len(ordered))))
    return float(ordered[rank - 1])


def ratio(value: float, baseline: float) -> float:
    """value / baseline (infinite when the baseline is zero)."""
    return value / baseline if baseline else float("inf")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table; floats get three decimals below 10, one below 100, none above."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            digits = 3 if abs(value) < 10 else 1 if abs(value) < 100 else 0
            return f"{value:,.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
