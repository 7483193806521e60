"""Unit tests of the generated benchmark tables and the benchmark's statistics."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.stats import markdown_table, median, percentile, ratio
from tabular_pipeline.data.synthetic import make_mixed_table
from tabular_pipeline.errors import PipelineError


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_generated_tables_are_mixed_typed_with_gaps_and_reproducible(task):
    table = make_mixed_table(500, columns=30, task=task, seed=4)
    assert table.shape == (500, 30)
    assert table.columns[0] == "row_id" and table.columns[-1] == "label"
    kinds = table.drop(columns=["label"]).dtypes.map(str).value_counts()
    assert kinds["category"] == 8 and kinds["bool"] == 1 and kinds["float64"] == 19
    assert table.drop(columns=["row_id", "label", "flag"]).isna().any().all(), "every feature has missing values"
    assert table["label"].nunique() == {"binary": 2, "multiclass": 3}.get(task, 500)
    pd.testing.assert_frame_equal(table, make_mixed_table(500, columns=30, task=task, seed=4))


def test_generated_table_arguments_are_checked():
    with pytest.raises(PipelineError, match="5 rows was asked for; expected at least 10"):
        make_mixed_table(5)
    with pytest.raises(PipelineError, match="4 columns was asked for; expected at least 6"):
        make_mixed_table(100, columns=4)
    with pytest.raises(PipelineError, match="task 'ranking'"):
        make_mixed_table(100, task="ranking")


def test_benchmark_statistics():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert percentile(list(range(1, 101)), 0.99) == 99 and percentile([5.0], 0.5) == 5.0
    assert ratio(3.0, 2.0) == 1.5 and ratio(1.0, 0.0) == float("inf")
    with pytest.raises(ValueError):
        median([])
    assert markdown_table(["a", "b"], [["x", 1.23456]]).splitlines() == ["| a | b |", "|---|---|", "| x | 1.235 |"]
    assert markdown_table(["s"], [[32.174], [1234567.8]]).splitlines()[2:] == ["| 32.2 |", "| 1,234,568 |"]
