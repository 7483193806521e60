"""Unit tests of loading, validating and splitting tables."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures import mixed_frame

from tabular_pipeline.data.splits import (
    detect_task,
    harmonise_dtypes,
    prepare_splits,
    resolve_task,
    split_table,
    validate_split_columns,
    validate_table,
)
from tabular_pipeline.data.tables import TableLocation, locate_table, read_table
from tabular_pipeline.errors import PipelineError


def write(path, text):
    path.write_text(text)
    return path


def test_locate_single_file_pair_and_logged_folder(tmp_path):
    csv = write(tmp_path / "t.csv", "a,label\n1,0\n")
    assert locate_table(csv) == TableLocation(single=csv)
    pair = tmp_path / "pair"
    pair.mkdir()
    write(pair / "train.csv", "a,label\n1,0\n")
    write(pair / "test.csv", "a,label\n1,0\n")
    assert locate_table(pair).is_split
    logged = tmp_path / "raw"
    logged.mkdir()
    write(logged / "mine.csv", "a,label\n1,0\n")
    assert locate_table(logged).single == logged / "mine.csv"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p / "missing.csv", "does not exist"),
        (lambda p: write(p / "t.json", "{}"), "not a table"),
        (lambda p: p, "expected train.csv and test.csv"),
    ],
)
def test_locate_refuses_what_is_not_a_table(tmp_path, setup, message):
    with pytest.raises(PipelineError, match=message):
        locate_table(setup(tmp_path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"a,b\n1,2\n3,4,5,6\n", "not a well-formed CSV"),
        (b"\x00\x01\x02PK binary", "is binary"),
        (b"a,b\n\xff\xfe,1\n", "not UTF-8"),
    ],
)
def test_read_table_errors_are_one_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(PipelineError, match=message) as caught:
        read_table(path)
    assert "\n" not in str(caught.value)


def test_validate_table_checks_rows_label_and_features():
    with pytest.raises(PipelineError, match="no data rows"):
        validate_table(pd.DataFrame(columns=["a", "label"]), "label")
    with pytest.raises(PipelineError, match="label column 'target' is not in"):
        validate_table(pd.DataFrame({"a": [1], "label": [0]}), "target")
    with pytest.raises(PipelineError, match="only the label column"):
        validate_table(pd.DataFrame({"label": [0, 1]}), "label")
    with pytest.raises(PipelineError, match="all NaN"):
        validate_table(pd.DataFrame({"a": [np.nan, np.nan], "label": [0, 1]}), "label")


def test_single_class_label_is_refused(tmp_path):
    path = write(tmp_path / "t.csv", "a,label\n1,x\n2,x\n3,x\n")
    with pytest.raises(PipelineError, match="single class"):
        prepare_splits(TableLocation(single=path), "label", 0.25, 1, "auto")


def test_train_and_test_must_share_columns():
    with pytest.raises(PipelineError, match="only in train: \\['b'\\]"):
        validate_split_columns(pd.DataFrame(columns=["a", "b", "label"]), pd.DataFrame(columns=["a", "label"]))


@pytest.mark.parametrize(
    ("values", "task"),
    [
        ([0, 1, 0, 1], "binary"),
        (["yes", "no", "yes"], "binary"),
        ([True, False], "binary"),
        ([0, 1, 2, 1], "multiclass"),
        (["a", "b", "c"], "multiclass"),
        ([0.5, 1.25, 3.0, 2.2], "regression"),
        (list(range(50)), "regression"),
    ],
)
def test_detect_task(values, task):
    assert detect_task(pd.Series(values)) == task


def test_resolve_task_override_and_unknown():
    assert resolve_task("regression", pd.Series([0, 1])) == "regression"
    with pytest.raises(PipelineError, match="expected auto, binary"):
        resolve_task("clustering", pd.Series([0, 1]))


def test_split_is_stratified_and_reproducible():
    frame = pd.DataFrame({"a": range(100), "label": [0] * 80 + [1] * 20})
    first = split_table(frame, "label", 0.25, 1, "binary")
    again = split_table(frame, "label", 0.25, 1, "binary")
    assert len(first.test) == 25
    assert first.test["label"].sum() == 5
    pd.testing.assert_frame_equal(first.test, again.test)


def test_harmonise_makes_integer_features_float_and_keeps_label():
    frame = pd.DataFrame({"n": [1, 2], "s": pd.array(["a", "b"], dtype="string"), "label": [0, 1]})
    out = harmonise_dtypes(frame, "label")
    assert out["n"].dtype == "float64"
    assert out["s"].dtype == object
    assert out["label"].dtype == "int64"
    assert frame["n"].dtype == "int64"


def test_prepare_splits_on_a_mixed_table(tmp_path):
    path = tmp_path / "mixed.csv"
    mixed_frame(120).to_csv(path, index=False)
    splits, task = prepare_splits(TableLocation(single=path), "label", 0.25, 1, "auto")
    assert task == "binary"
    assert len(splits.train) == 90 and len(splits.test) == 30
    assert splits.train["x2"].dtype == "float64"


def test_the_csv_missing_value_spellings_are_pandas_own():
    """The list the pyarrow reader uses must be exactly what pandas reads as missing: every entry
    becomes NaN in pandas, and a pandas upgrade that changes its defaults fails here."""
    import io

    from tabular_pipeline.data.tables import PANDAS_NA_VALUES

    spellings = [value for value in PANDAS_NA_VALUES if value]
    text = "x\n" + "\n".join(spellings) + "\nkept\n"
    read = pd.read_csv(io.StringIO(text), dtype=str)["x"]
    assert read.iloc[:-1].isna().all() and read.iloc[-1] == "kept"
    assert not pd.read_csv(io.StringIO("x\nNAN\n-NAN\nnone\n"), dtype=str)["x"].isna().any(), (
        "other spellings stay text"
    )


def test_a_missing_label_column_names_the_likely_columns_or_the_last_ones():
    from tabular_pipeline.data.splits import describe_columns

    wide = pd.DataFrame(columns=[f"feature_{i}" for i in range(30)] + ["Target"])
    assert describe_columns(wide, "target") == "likely: Target; 31 columns in all"
    assert describe_columns(wide, "outcome") == "likely: Target; 31 columns in all", "named like a label"
    assert describe_columns(wide, "feature_x").startswith("likely: Target, feature_"), "then close spellings"
    plain = pd.DataFrame(columns=[f"feature_{i}" for i in range(30)] + ["status"])
    assert describe_columns(plain, "result").endswith("feature_27, feature_28, feature_29, status"), (
        "nothing likely: the last columns, where the label often is"
    )
    with pytest.raises(
        PipelineError, match=r"label column 'label' is not in t.csv \(31 columns, the last 8: .*status\)"
    ):
        validate_table(pd.DataFrame([range(31)], columns=plain.columns), "label", "t.csv")


def test_a_copy_of_the_users_table_is_named_with_where_it_came_from(tmp_path):
    """`process` reads download's Parquet copy; the message also names the file the user passed."""
    copy = tmp_path / "breast_cancer.parquet"
    pd.DataFrame({"x": [1.0, 2.0], "label": [0, 1]}).to_parquet(copy)
    location = locate_table(copy)
    with pytest.raises(
        PipelineError, match=r"^label column 'target' is not in breast_cancer.parquet from data/breast_cancer.csv \("
    ):
        prepare_splits(location, "target", 0.5, 0, "auto", origin="data/breast_cancer.csv")
    with pytest.raises(PipelineError, match=r"^label column 'target' is not in breast_cancer.parquet \("):
        prepare_splits(location, "target", 0.5, 0, "auto")


def test_columns_that_look_like_labels_come_before_close_spellings():
    """The bundled table asked for `target`: its label, `label`, comes before `worst_area`, the
    closest spelling; then a column with two values before one with five, and the closest name last."""
    from tabular_pipeline.data.splits import describe_columns

    table = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / "breast_cancer.csv")
    assert describe_columns(table, "target") == "likely: label, worst_area; 31 columns in all"
    rng = np.random.default_rng(0)
    flags = pd.DataFrame(
        {
            "grade": rng.integers(0, 5, 50),
            "amount": rng.normal(size=50),
            "smoker": rng.integers(0, 2, 50),
            "amounts": rng.normal(size=50),
        }
    )
    assert describe_columns(flags, "amount_x") == "likely: smoker, grade, amount; 4 columns in all"
