"""Row fingerprints: equal rows agree however each engine typed them; different rows differ."""

import numpy as np
import pandas as pd
import pyarrow as pa

from tabular_pipeline.data.row_hashes import column_kinds, hash_table, recorded_kinds, row_hashes


def test_the_same_rows_hash_alike_as_pandas_and_spark_type_them():
    """pandas reads whole numbers as int64 (float64 after harmonising), Spark as bigint or double;
    a boolean may come as bool or as text; a missing value as NaN, None or pd.NA."""
    as_pandas = pd.DataFrame(
        {"x": [1.0, -0.0, np.nan], "flag": [True, False, None], "colour": ["red", None, "blue"], "label": [0, 1, 1]}
    )
    as_spark = pd.DataFrame(
        {
            "label": pd.array([0, 1, 1], dtype="Int64"),
            "colour": pd.array(["red", pd.NA, "blue"], dtype="string"),
            "flag": ["true", "false", None],
            "x": pd.array([1, 0, None], dtype="Int64"),
        }
    )
    kinds = column_kinds(as_pandas)
    assert kinds == {"x": "number", "flag": "text", "colour": "text", "label": "number"}
    assert column_kinds(as_spark) == kinds
    assert list(row_hashes(as_pandas, kinds)) == list(row_hashes(as_spark, kinds))


def test_rows_that_differ_in_any_value_hash_apart():
    frame = pd.DataFrame({"x": [1.0, 1.0, 1.0, 1.0], "c": ["a", "a", "b", None], "label": [0, 1, 0, 0]})
    hashes = row_hashes(frame, column_kinds(frame))
    assert len(set(hashes)) == 4
    other_text = pd.DataFrame({"x": [1.0], "c": ["none of these"], "label": [0]})
    assert row_hashes(other_text, column_kinds(frame))[0] != hashes[3], "a missing value is not any text"


def test_one_csv_read_by_both_engines_hashes_alike(tmp_path):
    """The real readers: pandas reads "NA", "null" and "None" as missing and keeps ISO dates as text;
    Spark's CSV reader keeps those words as text and types the dates. The rows are the same rows."""
    from tabular_pipeline.data.tables import read_table
    from tabular_pipeline.spark.session import read_table as spark_read_table
    from tabular_pipeline.spark.session import start_session, stop_session

    table = tmp_path / "table.csv"
    table.write_text(
        "x,colour,signed_up,seen_at,label\n"
        "1.5,red,2024-01-31,2024-01-31T10:00:00,0\n"
        "2,NA,2024-02-01,2024-02-01T11:30:00,1\n"
        ",null,,2024-02-02T12:00:00,1\n"
        "4,None,2024-02-03,,0\n"
    )
    as_pandas = read_table(table)
    spark = start_session("local[1]", "row-hash-tests")
    try:
        as_spark = spark_read_table(spark, str(table), "csv").toPandas()
        spark_types = dict(spark_read_table(spark, str(table), "csv").dtypes)
    finally:
        stop_session(spark)
    # The premise: the two readers do disagree on these columns.
    assert as_pandas["colour"].isna().sum() == 3 and as_spark["colour"].isna().sum() == 0
    assert spark_types["signed_up"] == "date" and spark_types["seen_at"] == "timestamp"
    assert as_pandas["signed_up"].dtype == object
    kinds = column_kinds(as_pandas)
    assert list(row_hashes(as_pandas, kinds)) == list(row_hashes(as_spark, kinds))
    assert len(set(row_hashes(as_pandas, kinds))) == 4


def test_only_the_named_columns_count_and_their_order_does_not():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"], "extra": [5, 6]})
    kinds = {"b": "text", "a": "number"}
    assert list(row_hashes(frame, kinds)) == list(row_hashes(frame[["b", "a"]], kinds))
    assert list(row_hashes(frame.assign(extra=[7, 8]), kinds)) == list(row_hashes(frame, kinds))


def test_a_hash_table_records_the_columns_it_was_made_over():
    frame = pd.DataFrame({"a": [1, 2], "label": ["no", "yes"]})
    table = hash_table(frame)
    assert table.schema.field("row_hash").type == pa.uint64()
    assert recorded_kinds(table.schema) == {"a": "number", "label": "text"}
    assert list(table.column(0).to_numpy()) == list(row_hashes(frame, {"a": "number", "label": "text"}))


def test_text_columns_canonicalised_per_distinct_value_hash_as_value_by_value(monkeypatch):
    """Categories, booleans and all-text columns are canonicalised once per distinct value; the
    hashes must be the ones the value-by-value path gives (training splits hashed before this
    change are compared with test splits hashed after it), and the ones a hand-written canonical
    frame gives."""
    from tabular_pipeline.data import row_hashes as module

    colour = ["red", "NA", None, "blue", "null", "red"]
    day = ["2024-01-31", None, "2024-02-01", "2024-02-01", "2024-01-31", None]
    frame = pd.DataFrame(
        {
            "colour": colour,
            "colour_category": pd.Categorical(colour),
            "colour_string": pd.array(colour, dtype="string"),
            "day": day,
            "flag": [True, False, True, True, False, False],
            "flag_nullable": pd.array([True, None, False, True, None, False], dtype="boolean"),
            "empty": pd.Series([None] * 6, dtype=object),
        }
    )
    kinds = {name: "text" for name in frame.columns}
    assert all(module._one_value_per_distinct(frame[name]) for name in frame.columns)
    fast = row_hashes(frame, kinds)
    monkeypatch.setattr(module, "_one_value_per_distinct", lambda _series: False)
    assert list(fast) == list(row_hashes(frame, kinds))

    missing = module._MISSING
    canonical_colour = ["red", missing, missing, "blue", missing, "red"]
    by_hand = pd.DataFrame(
        {
            "colour": canonical_colour,
            "colour_category": canonical_colour,
            "colour_string": canonical_colour,
            "day": [
                "2024-01-31T00:00:00",
                missing,
                "2024-02-01T00:00:00",
                "2024-02-01T00:00:00",
                "2024-01-31T00:00:00",
                missing,
            ],
            "empty": [missing] * 6,
            "flag": ["true", "false", "true", "true", "false", "false"],
            "flag_nullable": ["true", missing, "false", "true", missing, "false"],
        },
        dtype=object,
    )
    assert list(fast) == list(pd.util.hash_pandas_object(by_hand, index=False).to_numpy(dtype=np.uint64))


def test_a_mixed_object_column_keeps_values_that_compare_equal_apart():
    """1 and True compare equal in Python; as text they are "1" and "true", so they hash apart."""
    frame = pd.DataFrame({"mixed": pd.Series([1, True, "1"], dtype=object)})
    hashes = row_hashes(frame, {"mixed": "text"})
    assert hashes[0] != hashes[1] and hashes[0] == hashes[2]


def test_categories_of_numbers_hash_as_their_values_did_before():
    """The value-by-value path sees a category column as `to_numpy` gives it: whole-number
    categories with a missing value as floats, float32 as float32. Those hashes are pinned here by
    hand, as training splits hashed by earlier code recorded them."""
    from tabular_pipeline.data import row_hashes as module

    missing = module._MISSING
    frame = pd.DataFrame(
        {
            "counts": pd.Categorical([1, 2, None]),
            "ratios": pd.Categorical(np.array([0.1, 0.2, 0.1], dtype="float32")),
        }
    )
    by_hand = pd.DataFrame({"counts": ["1.0", "2.0", missing], "ratios": ["0.1", "0.2", "0.1"]}, dtype=object)
    expected = pd.util.hash_pandas_object(by_hand, index=False).to_numpy(dtype=np.uint64)
    assert list(row_hashes(frame, {"counts": "text", "ratios": "text"})) == list(expected)


def test_a_column_of_timestamps_with_and_without_offsets_hashes_as_value_by_value(monkeypatch):
    """pandas reads a timestamp without an offset differently once it has seen one with an offset,
    so the same text can parse two ways in one column: the rows must hash as the value-by-value
    path hashed them (helper-10's review found the per-distinct path did not)."""
    from tabular_pipeline.data import row_hashes as module

    frame = pd.DataFrame({"seen_at": ["2024-01-01T00:00:00", "2024-01-02T00:00:00Z", "2024-01-01T00:00:00", None]})
    kinds = {"seen_at": "text"}
    assert module._one_value_per_distinct(frame["seen_at"])
    fast = row_hashes(frame, kinds)
    monkeypatch.setattr(module, "_one_value_per_distinct", lambda _series: False)
    assert list(fast) == list(row_hashes(frame, kinds))
