"""`download` hands over a typed copy of the raw table: the same frame `process` would have read
from the CSV, in Parquet; what Parquet cannot hold stays a CSV."""

import pandas as pd

from steps.download import typed_copy
from tabular_pipeline.data.tables import read_table


def test_the_typed_copy_reads_back_as_the_table_read_from_the_csv(tmp_path):
    raw = tmp_path / "customers.csv"
    raw.write_text("id,age,city,member,label\n1,31,Paris,True,yes\n2,,Lyon,False,no\n3,45,,True,yes\n")
    staging = tmp_path / "raw"
    staging.mkdir()
    table = read_table(raw)
    copy = typed_copy(table, raw, staging)
    assert copy == staging / "customers.parquet"
    back = read_table(copy)
    pd.testing.assert_frame_equal(back.fillna(-1), table.fillna(-1), check_dtype=True)
    assert back["city"].isna().tolist() == [False, False, True], "a missing text stays missing"


def test_a_table_parquet_cannot_hold_is_kept_as_csv(tmp_path):
    raw = tmp_path / "mixed.csv"
    raw.write_text("a,label\n1,x\n")
    staging = tmp_path / "raw"
    staging.mkdir()
    mixed = pd.DataFrame({"a": pd.Series([1, "two"], dtype=object), "label": ["x", "y"]})
    copy = typed_copy(mixed, raw, staging)
    assert copy == staging / "mixed.csv" and copy.read_bytes() == raw.read_bytes()
    assert sorted(p.name for p in staging.iterdir()) == ["mixed.csv"], "no half-written Parquet left"
