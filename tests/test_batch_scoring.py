"""Unit tests of batch scoring on tiny Arrow tables: planning, casting, streaming, engines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tabular_pipeline.batch_scoring import (
    InputColumn,
    TableWriter,
    arrow_feature_schema,
    cast_features,
    check_engine,
    parse_key_columns,
    plan_scoring,
    score_stream,
    table_format,
)
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.spark_scoring import check_master, remove_failed_output, result_type

FEATURES = [InputColumn("x", "double"), InputColumn("colour", "string")]


def batch(**columns) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def test_default_keys_are_the_columns_the_model_does_not_read():
    plan = plan_scoring(["id", "x", "colour", "label"], FEATURES, [])
    assert plan.key_columns == ["id", "label"] and not plan.add_row_number
    assert plan_scoring(["x", "colour"], FEATURES, []).add_row_number, "nothing to join on: number the rows"
    assert plan_scoring(["id", "x", "colour"], FEATURES, ["id"]).key_columns == ["id"]


@pytest.mark.parametrize(
    ("columns", "keys", "message"),
    [
        (["id", "x"], [], "lacks 1 column(s) the model needs (colour)"),
        (["x", "colour"], ["customer"], "key column(s) customer are not in the table"),
        (["x", "colour", "prediction"], ["prediction"], "would clash"),
    ],
)
def test_tables_that_do_not_fit_the_model_are_refused(columns, keys, message):
    with pytest.raises(PipelineError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_scoring(columns, FEATURES, keys)


def test_features_are_cast_to_the_model_schema():
    cast = cast_features(batch(id=[1, 2], x=[1, 2], colour=["a", None]), arrow_feature_schema(FEATURES))
    assert cast.schema == pa.schema([("x", pa.float64()), ("colour", pa.string())]), "int64 becomes double, as the model declares"
    frame = cast.to_pandas()
    assert frame["x"].dtype == np.float64 and frame["colour"].isna().tolist() == [False, True]


def test_text_in_a_numeric_column_is_one_clear_error():
    with pytest.raises(PipelineError, match="column 'x' cannot be read as double"):
        cast_features(batch(x=["1.5", "abc"], colour=["a", "b"]), arrow_feature_schema(FEATURES))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_streaming_keeps_row_order_and_numbers_rows_across_batches(tmp_path, fmt):
    batches = [batch(x=[1.0, 2.0, 3.0], colour=["a", "b", "a"]), batch(x=[4.0, None], colour=["b", None])]
    plan = plan_scoring(["x", "colour"], FEATURES, [])
    seen = []
    writer = TableWriter(tmp_path / f"out.{fmt}", fmt)
    totals = score_stream(iter(batches), plan, lambda frame: frame["x"].fillna(0).to_numpy() * 10, writer, seen.append)
    writer.close()
    out = pd.read_parquet(writer.path) if fmt == "parquet" else pd.read_csv(writer.path)
    assert totals.rows == 5 and totals.batches == 2 and len(seen) == 2
    assert out["row_number"].tolist() == [0, 1, 2, 3, 4]
    assert out["prediction"].tolist() == [10.0, 20.0, 30.0, 40.0, 0.0]


def test_predictions_must_be_one_value_per_row(tmp_path):
    plan = plan_scoring(["x", "colour"], FEATURES, [])
    with pytest.raises(PipelineError, match="one value per row"):
        score_stream(iter([batch(x=[1.0], colour=["a"])]), plan, lambda frame: np.zeros((1, 2)), TableWriter(tmp_path / "o.parquet", "parquet"))


def test_a_discarded_writer_removes_only_what_it_wrote(tmp_path):
    earlier = tmp_path / "earlier.parquet"
    earlier.write_bytes(b"a result from an earlier run")
    TableWriter(earlier, "parquet").discard()
    assert earlier.exists(), "a writer that never wrote leaves the file alone"
    writer = TableWriter(tmp_path / "partial.csv", "csv")
    writer.write(pa.table({"prediction": [1.0, 2.0]}))
    writer.discard()
    assert not writer.path.exists()


def test_a_failed_spark_write_leaves_no_half_table(tmp_path):
    created = tmp_path / "created.parquet"
    (created / "part-0.parquet").parent.mkdir()
    (created / "part-0.parquet").write_bytes(b"half")
    remove_failed_output(created, existed=False)
    assert not created.exists(), "a folder this run created goes"
    emptied = tmp_path / "emptied.parquet"
    emptied.mkdir()
    (emptied / "_temporary").mkdir()
    remove_failed_output(emptied, existed=True)
    assert not emptied.exists(), "a folder Spark's overwrite emptied goes"
    untouched = tmp_path / "untouched.parquet"
    untouched.mkdir()
    (untouched / "part-0.parquet").write_bytes(b"an earlier result")
    remove_failed_output(untouched, existed=True)
    assert (untouched / "part-0.parquet").exists(), "a table the write never reached stays"


def test_engines_formats_keys_and_masters_are_checked():
    assert check_engine(" Spark ") == "spark"
    with pytest.raises(PipelineError, match="expected one of pandas, spark"):
        check_engine("dask")
    assert table_format("/data/scored.parquet/", "output") == "parquet"
    with pytest.raises(PipelineError, match=r"must end in \.parquet or \.csv"):
        table_format("scores.xlsx", "output")
    assert parse_key_columns(" id, ,label ") == ["id", "label"]
    assert check_master("spark://10.0.0.5:7077") == "spark://10.0.0.5:7077"
    assert check_master("local[4]") == "local[4]"
    with pytest.raises(PipelineError, match="not a Spark master URL"):
        check_master("local[4]; rm -rf /")


def test_the_spark_result_type_follows_the_model_output_schema():
    from mlflow.models import infer_signature

    assert result_type(infer_signature(pd.DataFrame({"a": [1.0]}), np.array([1, 0])).outputs) == "bigint"
    assert result_type(infer_signature(pd.DataFrame({"a": [1.0]}), np.array(["good", "bad"])).outputs) == "string"
    assert result_type(None) == "double"
