"""Unit tests of which columns are dropped before training, and why."""

import numpy as np
import pandas as pd
import pytest

from tabular_pipeline.data.screening import drop_reason, screen_columns
from tabular_pipeline.errors import PipelineError

ROWS = 50


@pytest.mark.parametrize(
    ("name", "values", "reason"),
    [
        ("customer_id", np.arange(ROWS, dtype=float)[::-1], "identifier-like (unique whole numbers"),
        ("row", np.arange(ROWS, dtype=float), "identifier-like (a row counter)"),
        ("email", [f"user{i}@x.org" for i in range(ROWS)], "identifier-like (a different text value"),
        ("flag", [1.0] * ROWS, "constant"),
        ("empty", [np.nan] * ROWS, "all values missing"),
    ],
)
def test_columns_that_carry_no_signal_are_dropped(name, values, reason):
    assert drop_reason(pd.Series(values), name).startswith(reason)


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("measurement", np.random.default_rng(0).normal(size=ROWS)),
        ("count", np.random.default_rng(0).integers(0, 5, ROWS).astype(float)),
        ("colour", ["red", "blue"] * (ROWS // 2)),
        ("member", [True, False] * (ROWS // 2)),
        ("sparse", [1.0] + [np.nan] * (ROWS - 1)),
    ],
)
def test_informative_columns_are_kept(name, values):
    assert drop_reason(pd.Series(values), name) is None


def test_screen_reports_reasons_and_refuses_an_empty_result():
    frame = pd.DataFrame({"id": np.arange(ROWS, dtype=float), "x": np.random.default_rng(1).normal(size=ROWS), "k": 1})
    kept, dropped = screen_columns(frame)
    assert kept == ["x"] and set(dropped) == {"id", "k"}
    with pytest.raises(PipelineError, match="no usable feature column"):
        screen_columns(frame[["id", "k"]])
