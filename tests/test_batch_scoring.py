"""Unit tests of batch scoring on tiny Arrow tables: planning, casting, streaming, engines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tabular_pipeline.engines import check_engine
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.scoring.batch import (
    InputColumn,
    TableWriter,
    arrow_feature_schema,
    cast_features,
    header_quoting,
    parse_key_columns,
    plan_scoring,
    score_stream,
    table_format,
)
from tabular_pipeline.scoring.outputs import check_output_path, discard, publish, staging_path
from tabular_pipeline.scoring.spark import result_type
from tabular_pipeline.spark.session import check_master

FEATURES = [InputColumn("x", "double"), InputColumn("colour", "string")]


def batch(**columns) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def test_default_keys_are_the_columns_the_model_does_not_read():
    plan = plan_scoring(["id", "x", "colour", "label"], FEATURES, [])
    assert plan.key_columns == ["id", "label"] and not plan.add_row_number
    assert plan_scoring(["x", "colour"], FEATURES, []).add_row_number, "nothing to join on: number the rows"
    assert plan_scoring(["id", "x", "colour"], FEATURES, ["id"]).key_columns == ["id"]


def test_the_label_column_is_a_key_column_only_when_asked():
    """predict reads the model's label column to measure performance; it is not copied by default."""
    assert plan_scoring(["id", "x", "colour", "label"], FEATURES, [], "label").key_columns == ["id"]
    assert plan_scoring(["x", "colour", "label"], FEATURES, [], "label").add_row_number
    assert plan_scoring(["id", "x", "colour", "label"], FEATURES, ["id", "label"], "label").key_columns == [
        "id",
        "label",
    ]


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
    assert cast.schema == pa.schema([("x", pa.float64()), ("colour", pa.string())]), (
        "int64 becomes double, as the model declares"
    )
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
    totals = score_stream(
        iter(batches), plan, lambda frame, _: frame["x"].fillna(0).to_numpy() * 10, writer, seen.append
    )
    assert not writer.path.exists(), "nothing is at the target before the commit"
    writer.commit()
    out = pd.read_parquet(writer.path) if fmt == "parquet" else pd.read_csv(writer.path)
    assert totals.rows == 5 and totals.batches == 2 and len(seen) == 2
    assert out["row_number"].tolist() == [0, 1, 2, 3, 4]
    assert out["prediction"].tolist() == [10.0, 20.0, 30.0, 40.0, 0.0]


def test_predictions_must_be_one_value_per_row(tmp_path):
    plan = plan_scoring(["x", "colour"], FEATURES, [])
    with pytest.raises(PipelineError, match="one value per row"):
        score_stream(
            iter([batch(x=[1.0], colour=["a"])]),
            plan,
            lambda *_: np.zeros((1, 2)),
            TableWriter(tmp_path / "o.parquet", "parquet"),
        )


def test_a_discarded_writer_leaves_the_earlier_output_as_it_was(tmp_path):
    earlier = tmp_path / "earlier.parquet"
    earlier.write_bytes(b"a result from an earlier run")
    TableWriter(earlier, "parquet").discard()
    writer = TableWriter(earlier, "parquet")
    writer.write(pa.table({"prediction": [1.0, 2.0]}))
    writer.discard()
    assert earlier.read_bytes() == b"a result from an earlier run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.parquet"], "the staged file is gone"


def test_a_committed_csv_replaces_the_earlier_output_with_a_plain_header(tmp_path):
    target = tmp_path / "scores.csv"
    target.write_text("old\n")
    writer = TableWriter(target, "csv", overwrite=True)
    writer.write(pa.table({"row_id": ["a", "b"], "prediction": [1.0, 2.0]}))
    writer.commit()
    assert target.read_text().splitlines()[0] == "row_id,prediction", "the header is not quoted"
    assert pd.read_csv(target)["row_id"].tolist() == ["a", "b"]
    assert header_quoting(["a,b", "c"]) == "needed" and header_quoting(["a", "b"]) == "none"


def test_outputs_never_overlap_the_input_and_are_absolute(tmp_path):
    table = tmp_path / "rows.csv"
    folder = tmp_path / "parts.parquet"
    assert check_output_path(str(tmp_path / "out.csv"), table) == tmp_path / "out.csv"
    for output, source in ((table, table), (folder / "scores.parquet", folder), (tmp_path, table)):
        with pytest.raises(PipelineError, match="overlaps the input"):
            check_output_path(str(output), source)
    with pytest.raises(PipelineError, match="is a relative path; expected an absolute path"):
        check_output_path("scores.csv", table)
    with pytest.raises(PipelineError, match="is a remote URI; expected a local or mounted absolute path"):
        check_output_path("s3a://bucket/scores.parquet", table)


RECORD = {"written_by": "tabular-pipeline predict", "run_id": "r1", "model_uri": "models:/m/1", "written_at": "now"}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_file_predict_wrote_is_replaced_and_a_users_file_is_not(tmp_path, fmt):
    """The daily run into the same path keeps working; a user's report at that path is refused in
    one line (unless overwrite=true), and so is predict's own output once someone edited it."""
    table = tmp_path / "rows.csv"
    ours = tmp_path / f"scores.{fmt}"
    writer = TableWriter(ours, fmt, RECORD)
    writer.write(pa.table({"prediction": [1.0, 2.0]}))
    writer.commit()
    assert check_output_path(str(ours), table) == ours, "an earlier predict output is replaced"
    users = tmp_path / f"report.{fmt}"
    pd.DataFrame({"revenue": [1, 2]}).to_parquet(users) if fmt == "parquet" else users.write_text("revenue\n1\n")
    with pytest.raises(PipelineError, match=f"output {users} is a file predict did not write; expected a new path"):
        check_output_path(str(users), table)
    assert check_output_path(str(users), table, overwrite=True) == users
    edited = pd.read_parquet(ours) if fmt == "parquet" else pd.read_csv(ours)
    edited = edited.assign(prediction=0.0)
    edited.to_parquet(ours) if fmt == "parquet" else edited.to_csv(ours, index=False)
    with pytest.raises(PipelineError, match="predict did not write"):
        check_output_path(str(ours), table)


def test_a_folder_is_replaced_only_when_predict_wrote_it_and_nothing_was_added(tmp_path):
    from tabular_pipeline.scoring.ownership import mark_folder

    table = tmp_path / "rows.csv"
    customers = tmp_path / "customers.parquet"  # a user's Spark table: part files and markers only
    customers.mkdir()
    for name in ("part-00000-abc.snappy.parquet", "_SUCCESS", ".part-00000-abc.snappy.parquet.crc"):
        (customers / name).write_bytes(b"")
    with pytest.raises(PipelineError, match=f"output {customers} is a folder predict did not write"):
        check_output_path(str(customers), table)
    mark_folder(customers, RECORD)
    assert check_output_path(str(customers), table) == customers, "an earlier Spark output of predict"
    (customers / "notes.txt").write_text("someone's file")
    with pytest.raises(PipelineError, match="is a folder predict did not write"):
        check_output_path(str(customers), table)
    with pytest.raises(PipelineError, match="holding more than a table's part files"):
        check_output_path(str(customers), table, overwrite=True)
    (customers / "notes.txt").unlink()
    assert check_output_path(str(customers), table, overwrite=True) == customers, "a table folder, on request"


def test_overwrite_replaces_files_and_table_folders_but_never_another_folder(tmp_path):
    """`-P overwrite=true -P output=/home/me` by mistake must not remove a home folder."""
    table = tmp_path / "rows.csv"
    home = tmp_path / "me"
    (home / "projects").mkdir(parents=True)
    (home / "notes.txt").write_text("mine")
    with pytest.raises(PipelineError, match=f"output {home} is a folder holding more than a table's part files"):
        check_output_path(str(home), table, overwrite=True)
    (home / "projects").rmdir()
    with pytest.raises(PipelineError, match="holding more than a table's part files"):
        check_output_path(str(home), table, overwrite=True)
    assert (home / "notes.txt").read_text() == "mine"


def test_a_file_put_at_the_output_while_predict_ran_is_not_replaced(tmp_path):
    """Ownership is checked again just before the move: a user's file that appeared after the
    start is kept, the staged output is removed, and an earlier predict CSV is still replaced."""
    for fmt in ("parquet", "csv"):
        target = tmp_path / f"scores.{fmt}"
        writer = TableWriter(target, fmt, RECORD)
        writer.write(pa.table({"prediction": [1.0, 2.0]}))
        target.write_text("a user's file, saved meanwhile")
        with pytest.raises(PipelineError, match=f"output {target} is a file predict did not write"):
            writer.commit()
        assert target.read_text() == "a user's file, saved meanwhile"
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(f".scores.{fmt}")) == []
        target.unlink()
    ours = tmp_path / "daily.csv"
    for day in (1, 2):
        writer = TableWriter(ours, "csv", RECORD)
        writer.write(pa.table({"prediction": [float(day)]}))
        writer.commit()
    assert pd.read_csv(ours)["prediction"].tolist() == [2.0], "the daily CSV is replaced by the next day's"


def test_publishing_swaps_folders_and_files_in_whole(tmp_path):
    target = tmp_path / "scores.parquet"
    target.mkdir()
    (target / "part-0.parquet").write_bytes(b"old")
    staged = staging_path(target)
    staged.mkdir()
    (staged / "part-0.parquet").write_bytes(b"new")
    publish(staged, target)
    assert (target / "part-0.parquet").read_bytes() == b"new"
    staged = staging_path(target)
    staged.write_bytes(b"a single file now")
    publish(staged, target)
    assert target.read_bytes() == b"a single file now"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"], "nothing is left aside"
    leftover = staging_path(target)
    leftover.mkdir()
    discard(leftover)
    assert not leftover.exists() and target.read_bytes() == b"a single file now"


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


def test_a_missing_input_names_what_predict_reads(tmp_path):
    """Not training's "a folder with train.csv and test.csv": predict scores one table."""
    from steps.predict import local_table

    with pytest.raises(PipelineError) as missing:
        local_table(str(tmp_path / "new_rows.parquet"), tmp_path)
    assert str(missing.value) == (
        f"data path {tmp_path / 'new_rows.parquet'} does not exist; expected a .csv or .parquet file, "
        "or a folder of .csv or .parquet part files (one table)"
    )
