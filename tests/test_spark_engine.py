"""The Spark engine's pieces on a local session and tiny tables written to Parquet: the checks and
the split, fitting each algorithm and task on the cluster, and the export that serves without Spark.

The export is the contract: the scikit-learn pipeline must answer raw rows (a missing number, a
missing and an unseen category) with the cluster's own predictions and probabilities, within 1e-6,
and the metrics computed on the cluster must equal scikit-learn's on the same answers."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from fixtures import mixed_frame

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.evaluation.metrics import classification_metrics, regression_metrics
from tabular_pipeline.spark.algorithms import check_spark_hyperparameters, macro_f1
from tabular_pipeline.spark.tables import small_class_test_rows

LABEL = "label"


@pytest.fixture(scope="module")
def spark():
    from tabular_pipeline.spark.session import start_session

    session = start_session("local[2]", "tabular-pipeline-tests")
    yield session
    session.stop()


def parquet_frame(spark, frame: pd.DataFrame, path):
    """`frame` as Spark reads it from a Parquet file (NaN and None become nulls, as in real tables)."""
    from tabular_pipeline.spark.tables import read_frame

    frame.to_parquet(path, index=False)
    return read_frame(spark, path.as_uri())[0]


def test_lightgbm_svm_on_many_classes_and_unknown_settings_are_refused_in_one_line():
    with pytest.raises(PipelineError, match="SynapseML.*use -P algorithm=xgboost"):
        check_spark_hyperparameters({}, "lightgbm", "binary")
    with pytest.raises(PipelineError, match="binary tasks only, and this is a multiclass task"):
        check_spark_hyperparameters({}, "svm", "multiclass")
    with pytest.raises(PipelineError, match="unknown hyperparameter 'C' for algorithm 'lr on Spark'"):
        check_spark_hyperparameters({"C": 1.0}, "lr", "binary")
    with pytest.raises(PipelineError, match="'max_depth' .* must be int"):
        check_spark_hyperparameters({"max_depth": "deep"}, "xgboost", "binary")
    check_spark_hyperparameters({"regParam": [0.01, 0.1], "maxIter": 50}, "lr", "regression")


def test_macro_f1_counts_every_class_seen_as_truth_or_prediction():
    confusion = {(0.0, 0.0): 3, (0.0, 1.0): 1, (1.0, 1.0): 2, (2.0, 1.0): 1}
    truth = [0] * 4 + [1] * 2 + [2]
    guess = [0, 0, 0, 1, 1, 1, 1]
    from sklearn.metrics import f1_score

    assert macro_f1(confusion) == pytest.approx(f1_score(truth, guess, average="macro", zero_division=0))


def test_small_classes_get_a_test_share_but_keep_a_training_row():
    assert [small_class_test_rows(rows, 0.25) for rows in (1, 2, 3, 4, 10)] == [0, 1, 1, 1, 2]
    assert small_class_test_rows(2, 0.9) == 1


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"x": [1.0, 2.0]}), "label column 'label' is not in t.parquet"),
        (pd.DataFrame({"x": pd.Series([], dtype=float), LABEL: pd.Series([], dtype=str)}), "no data rows"),
        (pd.DataFrame({"x": [1.0, 2.0], LABEL: [None, None]}, dtype=object).astype({"x": float}), "is empty"),
        (pd.DataFrame({"x": [np.nan, np.nan], LABEL: ["a", "b"]}), "every feature of t.parquet is missing"),
        (pd.DataFrame({LABEL: ["a", "b"]}), "only the label column"),
        (
            pd.DataFrame(
                {"when": pd.to_datetime(["2026-01-01", "2026-01-02"]).astype("datetime64[us]"), LABEL: ["a", "b"]}
            ),
            "when \\(timestamp",
        ),
    ],
)
def test_bad_tables_get_the_pandas_engines_one_line_errors(spark, tmp_path, frame, message):
    from tabular_pipeline.spark.tables import validate_frame

    table = parquet_frame(spark, frame, tmp_path / "t.parquet")
    with pytest.raises(PipelineError, match=message):
        validate_frame(table, LABEL, "t.parquet")


def test_missing_paths_mixed_folders_unreadable_types_and_one_class_are_refused(spark, tmp_path):
    from tabular_pipeline.spark.tables import list_data_files, read_frame, resolve_task

    with pytest.raises(PipelineError, match="holds no data files"):
        list_data_files(spark, (tmp_path / "nowhere").as_uri())
    (tmp_path / "mixed").mkdir()
    pd.DataFrame({"x": [1.0], LABEL: ["a"]}).to_csv(tmp_path / "mixed" / "a.csv", index=False)
    pd.DataFrame({"x": [1.0], LABEL: ["a"]}).to_parquet(tmp_path / "mixed" / "b.parquet")
    with pytest.raises(PipelineError, match="expected only .csv or only .parquet"):
        read_frame(spark, (tmp_path / "mixed").as_uri())
    nanoseconds = pd.DataFrame({"when": pd.to_datetime(["2026-01-01"]), LABEL: ["a"]})
    with pytest.raises(PipelineError, match="Spark cannot read .*PARQUET_TYPE_ILLEGAL.*; expected a CSV or Parquet"):
        parquet_frame(spark, nanoseconds, tmp_path / "ns.parquet")
    one_class = parquet_frame(spark, pd.DataFrame({"x": [1.0, 2.0], LABEL: ["a", "a"]}), tmp_path / "one.parquet")
    with pytest.raises(PipelineError, match="single class"):
        resolve_task(one_class, LABEL, "auto")
    text = parquet_frame(spark, pd.DataFrame({"x": [1.0, 2.0], LABEL: ["a", "b"]}), tmp_path / "text.parquet")
    with pytest.raises(PipelineError, match="not numeric; expected numbers for a regression task"):
        resolve_task(text, LABEL, "regression")
    from tabular_pipeline.spark.tables import check_class_count, harmonise_columns

    with pytest.raises(PipelineError, match="has more than 3 classes; expected a class label"):
        check_class_count(
            parquet_frame(spark, pd.DataFrame({"x": range(5), LABEL: list("abcde")}), tmp_path / "c.parquet"), LABEL, 3
        )
    # Spark reads the text "NaN" as a NaN double: such a label is missing, and its row is dropped.
    nan_label = parquet_frame(
        spark, pd.DataFrame({"x": [1.0, 2.0, 3.0], LABEL: [0.0, 1.0, np.nan]}), tmp_path / "n.parquet"
    )
    assert harmonise_columns(nan_label, LABEL).count() == 2


def test_the_split_is_seeded_stratified_and_the_same_however_the_rows_are_partitioned(spark, tmp_path, monkeypatch):
    from tabular_pipeline.spark import tables

    frame = pd.DataFrame({"x": np.arange(403.0), LABEL: ["big"] * 300 + ["mid"] * 100 + ["rare"] * 3})
    table = parquet_frame(spark, frame, tmp_path / "t.parquet")

    def split_rows(seed, partitions=1):
        train, test = tables.split_frame(table.repartition(partitions), LABEL, 0.25, seed, "multiclass")
        return train.toPandas().sort_values("x"), test.toPandas().sort_values("x").reset_index(drop=True)

    train, test = split_rows(1)
    assert len(train) + len(test) == 403 and set(train.x).isdisjoint(test.x)
    assert test[LABEL].value_counts().to_dict() == {"big": 75, "mid": 25, "rare": 1}, "exact shares below 10,000"
    pd.testing.assert_frame_equal(test, split_rows(1, partitions=7)[1])
    assert not split_rows(2)[1].x.equals(test.x), "another seed, another split"
    # Large classes get the seeded coin: a share near test_size, whatever the partitioning.
    monkeypatch.setattr(tables, "EXACT_SPLIT_BELOW_ROWS", 0)
    coin_train, coin_test = split_rows(1)
    assert len(coin_train) + len(coin_test) == 403 and 70 <= len(coin_test) <= 130
    pd.testing.assert_frame_equal(coin_test, split_rows(1, partitions=5)[1])


def test_a_split_written_by_one_task_reads_back_as_balanced_partitions(spark, tmp_path, monkeypatch):
    """XGBoost trains one worker per partition: a 1M-row split written as one row group came back as
    one partition holding every row and one empty, so one core trained while the other waited."""
    import pyarrow.parquet as pq

    from tabular_pipeline.spark import tables

    # The real setting: 400,000 rows of four random doubles (12.8 MB) make more than one row group.
    real = spark.range(400_000).selectExpr("id", "rand(1) a", "rand(2) b", "rand(3) c").coalesce(1)
    tables.write_parquet(real, str(tmp_path / "real"))
    (one_file,) = (tmp_path / "real").glob("*.parquet")
    assert pq.ParquetFile(one_file).metadata.num_row_groups >= 2
    monkeypatch.setattr(tables, "SPLIT_ROW_GROUP_BYTES", 64 * 1024)  # the 8 MB of a real split, scaled down
    rows = 60_000
    frame = spark.range(rows).selectExpr("id", "rand(1) AS x", "rand(2) AS y").coalesce(1)
    tables.write_parquet(frame, str(tmp_path / "train"))
    (written,) = (tmp_path / "train").glob("*.parquet")
    assert pq.ParquetFile(written).metadata.num_row_groups > 4
    # Spark's byte ranges are (bytes + openCostInBytes per file) over the cores, at least openCostInBytes
    # (4 MB, more than this whole file) and at most 128 MB: lower that floor, as a real split's size does.
    spark.conf.set("spark.sql.files.openCostInBytes", "1")
    try:
        back = spark.read.parquet(str(tmp_path / "train"))
        sizes = back.rdd.mapPartitions(lambda part: [sum(1 for _ in part)]).collect()
    finally:
        spark.conf.unset("spark.sql.files.openCostInBytes")
    assert len(sizes) >= 2 and sum(sizes) == rows and min(sizes) >= rows / (2 * len(sizes)), sizes


def test_a_table_train_basic_splits_itself_is_spread_over_the_cores(spark, tmp_path, monkeypatch):
    """`train_basic -P data_path=<table> -P engine=spark` splits in the step: a file of one row group
    (as pandas writes up to 1M rows) was read as one byte range per core, one holding every row and
    the others empty, and XGBoost, given as many partitions as workers, trained on one worker."""
    from tabular_pipeline.spark import tables
    from tabular_pipeline.spark.training import load_splits

    monkeypatch.setattr(tables, "EXACT_SPLIT_BELOW_ROWS", 0)  # large classes: the coin split, no shuffle

    frame = pd.DataFrame({"x": np.arange(400.0), LABEL: ["a", "b"] * 200})
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    # As a 1M-row file is: one range per core (this tiny file needs the 4 MB floor lowered for that).
    spark.conf.set("spark.sql.files.openCostInBytes", "1")
    try:
        assert spark.read.parquet(str(tmp_path / "t.parquet")).rdd.getNumPartitions() == 2
        splits = load_splits(spark, str(tmp_path / "t.parquet"), LABEL, 0.25, 1, "auto")
    finally:
        spark.conf.unset("spark.sql.files.openCostInBytes")
    for side, rows in (("train", splits.train_rows), ("test", splits.test_rows)):
        sizes = getattr(splits, side).rdd.mapPartitions(lambda part: [sum(1 for _ in part)]).collect()
        assert len(sizes) == spark.sparkContext.defaultParallelism and sum(sizes) == rows, (side, sizes)
        assert min(sizes) >= rows / 4, (side, sizes)


def test_a_recorded_split_that_is_gone_or_rewritten_is_refused_in_one_line(spark, tmp_path):
    from tabular_pipeline.spark.tables import list_data_files, listing_digest
    from tabular_pipeline.spark.training import check_split_unchanged

    folder = tmp_path / "_runs" / ".splits" / "train"  # underscore and dot folders above it are the user's
    folder.mkdir(parents=True)
    pd.DataFrame({"x": [1.0], LABEL: ["a"]}).to_parquet(folder / "part-0.parquet")
    digest = listing_digest(list_data_files(spark, folder.as_uri()))
    check_split_unchanged(spark, folder.as_uri(), digest, "runs:/r/processed")
    pd.DataFrame({"x": [1.0, 2.0], LABEL: ["a", "b"]}).to_parquet(folder / "part-1.parquet")
    with pytest.raises(PipelineError, match="has changed since process wrote it"):
        check_split_unchanged(spark, folder.as_uri(), digest, "runs:/r/processed")
    for part in folder.iterdir():
        part.unlink()
    with pytest.raises(PipelineError, match=r"recorded by runs:/r/processed is gone; expected it in place"):
        check_split_unchanged(spark, folder.as_uri(), digest, "runs:/r/processed")


def test_splits_go_inside_the_run_or_where_split_path_says_never_elsewhere(tmp_path):
    from tabular_pipeline.spark.processing import check_apart, split_destination

    local_artifacts = str(tmp_path / "mlruns" / "1" / "r1" / "artifacts")
    assert split_destination("", local_artifacts, "r1", "local[*]") == (
        (tmp_path / "mlruns" / "1" / "r1" / "artifacts").as_uri() + "/processed/data"
    )
    assert split_destination("", "s3://bucket/mlflow/1/r1/artifacts", "r1", "yarn") == (
        "s3a://bucket/mlflow/1/r1/artifacts/processed/data"
    )
    assert split_destination("hdfs://nn/splits/", "mlflow-artifacts:/1/r1", "r1", "yarn") == "hdfs://nn/splits/r1"
    with pytest.raises(PipelineError, match=r"mlflow-artifacts: \(the tracking server's proxy\).*set -P split_path"):
        split_destination("", "mlflow-artifacts:/1/r1/artifacts", "r1", "local[*]")
    with pytest.raises(PipelineError, match="a folder on this machine, which executors of spark://10.0.0.5:7077"):
        split_destination("", local_artifacts, "r1", "spark://10.0.0.5:7077")
    with pytest.raises(PipelineError, match="overlap; expected the splits outside the input table"):
        check_apart("file:///data/tables/r1", "file:///data/tables")
    with pytest.raises(PipelineError, match="overlap"):
        check_apart("file:///data/tables/splits/r1", "file:///data/tables/*.parquet")
    check_apart("file:///data/splits/r1", "file:///data/tables")


def test_spark_and_jvm_failures_read_as_one_line():
    from tabular_pipeline.spark.session import spark_failure

    class JavaException:
        def toString(self):  # noqa: N802 - py4j's name
            return 'org.apache.hadoop.fs.UnsupportedFileSystemException: No FileSystem for scheme "s3a"\n\tat ...'

    error = Exception("An error occurred while calling o71.load.\n: org.apache...")
    error.java_exception = JavaException()
    assert str(spark_failure(error, "process")) == (
        'process failed on Spark: org.apache.hadoop.fs.UnsupportedFileSystemException: No FileSystem for scheme "s3a"'
    )


CASES = [
    ("xgboost", "binary"),
    ("xgboost", "multiclass"),
    ("xgboost", "regression"),
    ("lr", "binary"),
    ("lr", "multiclass"),
    ("lr", "regression"),
    ("svm", "binary"),
]


@pytest.mark.parametrize(("algorithm", "task"), CASES)
def test_the_exported_model_answers_raw_rows_as_the_cluster_does(spark, tmp_path, algorithm, task):
    import skops.io as sio

    from tabular_pipeline.serving.model import probability_frame
    from tabular_pipeline.spark.evaluation import PROBABILITIES, cluster_metrics
    from tabular_pipeline.spark.fitting import fit_on_cluster, prepare
    from tabular_pipeline.spark.tables import harmonise_columns
    from tabular_pipeline.training.model_logging import trusted_types_of

    table = mixed_frame(rows=300, task=task, seed=3)
    train = harmonise_columns(parquet_frame(spark, table, tmp_path / "train.parquet"), LABEL)
    test_rows = mixed_frame(rows=60, task=task, seed=4)
    test_rows.loc[0, "colour"] = "purple"  # never seen in training
    test_rows["member"] = test_rows["member"].astype(object)
    test_rows.loc[1, ["x1", "x2", "colour", "member"]] = [np.nan, np.nan, None, None]
    test = harmonise_columns(parquet_frame(spark, test_rows, tmp_path / "test.parquet"), LABEL).coalesce(1)
    fixed = {"n_estimators": 20} if algorithm == "xgboost" else {"maxIter": 50}
    # One case searches a grid: cross-validated on the cluster, the best candidate refitted and exported.
    grid = {"regParam": [0.001, 1.0]} if (algorithm, task) == ("lr", "binary") else {}

    fit = fit_on_cluster(spark, train, LABEL, algorithm, task, fixed, grid, seed=1, folds=2)
    if grid:
        assert list(fit.search.table["regParam"]) == [0.001, 1.0] and fit.search.table["mean_test_score"].notna().all()
        assert fit.search.best_score == fit.search.table["mean_test_score"].max()
        assert fit.settings == {"maxIter": 50, "regParam": fit.search.best["regParam"]}
        assert fit.cluster_model.pipeline_model.stages[-1].getRegParam() == fit.search.best["regParam"]
    assert "customer_id" in fit.dropped and "constant" in fit.dropped
    scored = fit.cluster_model.score(prepare(test, LABEL, fit.columns, fit.classes, None))
    answers = scored.select("prediction", *([PROBABILITIES] if task != "regression" else [])).toPandas()
    raw = test.toPandas()
    features = raw.drop(columns=[LABEL])
    # What serving loads: the pipeline through skops, trusting only the listed types.
    served = sio.loads(sio.dumps(fit.exported), trusted=trusted_types_of(fit.exported))

    if task == "regression":
        np.testing.assert_allclose(served.predict(features), answers["prediction"], atol=1e-6, rtol=0)
        expected = regression_metrics(raw[LABEL], served.predict(features))
    else:
        output = probability_frame(served, features)
        cluster_probabilities = np.stack(answers[PROBABILITIES].to_numpy())
        np.testing.assert_allclose(output.filter(like="probability_").to_numpy(), cluster_probabilities, atol=1e-6)
        assert list(output["prediction"]) == [fit.classes[int(code)] for code in answers["prediction"]]
        expected = classification_metrics(
            raw[LABEL], output["prediction"].to_numpy(), output.filter(like="probability_").to_numpy(),
            np.asarray(fit.classes),
        )  # fmt: skip
    metrics = cluster_metrics(scored, task, max(len(fit.classes), 1))
    assert metrics.keys() == expected.keys()
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name


def test_main_reuses_a_spark_process_run_only_while_its_local_split_folder_exists(tmp_path):
    from types import SimpleNamespace

    from tabular_pipeline.orchestration.pipeline_inputs import spark_splits_exist

    def process_run(uri):
        return SimpleNamespace(data=SimpleNamespace(tags={"pipeline.split_uri": uri}))

    (tmp_path / "r1").mkdir()
    assert spark_splits_exist(process_run((tmp_path / "r1").as_uri()))
    assert not spark_splits_exist(process_run((tmp_path / "gone").as_uri()))
    assert spark_splits_exist(process_run("hdfs://nn/splits/r1")), "a cluster's store is checked by train_basic"


def test_a_session_that_cannot_start_says_what_to_do():
    from tabular_pipeline.spark.session import session_failure

    no_java = Exception("[JAVA_GATEWAY_EXITED] Java gateway process exited before sending its port number.")
    assert str(session_failure(no_java, "local[*]")).endswith("; expected Java 17 or later on PATH or in JAVA_HOME")
    stopped = Exception("java.lang.IllegalStateException: Cannot call methods on a stopped SparkContext.")
    assert "the Spark master spark://10.0.0.5:7077 did not accept the application" in str(
        session_failure(stopped, "spark://10.0.0.5:7077")
    )


def test_a_failure_whose_jvm_is_gone_still_reads_as_one_line():
    from tabular_pipeline.spark.session import session_failure

    class Gone:
        def toString(self):  # noqa: N802 - py4j's name
            raise ConnectionRefusedError(111, "Connection refused")

    error = Exception("unprintable")
    error.java_exception = Gone()
    assert "did not accept the application" in str(session_failure(error, "spark://127.0.0.1:7999"))
    assert str(session_failure(error, "local[2]")).endswith("Exception (the Spark JVM ended before saying why)")


SPARK_STEP_CTRL_C = """
import os, signal, threading, time
from tabular_pipeline.orchestration.step_runs import run_step
from tabular_pipeline.spark.session import start_session, stop_session

def body(run):
    spark = start_session("local[1]", "ctrl-c")
    print("run", run.info.run_id, flush=True)
    threading.Timer(8, os.kill, (os.getpid(), signal.SIGINT)).start()
    try:
        spark.range(0, 10**13, numPartitions=4).selectExpr("max(id % 7)").collect()  # hours, unless cancelled
    finally:
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C while cleaning up
        active = []

        def look():  # on a thread of its own: py4j closed this one's connection at the interrupt
            tracker, deadline = spark.sparkContext.statusTracker(), time.monotonic() + 30
            while tracker.getActiveJobsIds() and time.monotonic() < deadline:  # cancelling takes a moment
                time.sleep(0.2)
            active.extend(tracker.getActiveJobsIds())

        watcher = threading.Thread(target=look)
        watcher.start()
        watcher.join()
        print("active jobs", active, flush=True)
        stop_session(spark)
        print("cleaned up", flush=True)

run_step("demo", body)
"""


def test_a_spark_step_keeps_the_steps_ctrl_c_handling(tmp_path):
    """The first Ctrl-C cancels the running Spark job and stops the step; a second one, during the
    clean-up, does not cut it short (Spark's own handler, which its session installs, would)."""
    import subprocess
    import sys

    from conftest import PROJECT_DIR
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, "MLFLOW_TRACKING_URI": uri}
    done = subprocess.run(
        [sys.executable, "-c", SPARK_STEP_CTRL_C], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 130, done.stdout + done.stderr[-3000:]
    assert "active jobs []" in done.stdout and "cleaned up" in done.stdout, done.stdout + done.stderr[-3000:]
    assert "Traceback" not in done.stderr and done.stderr.count("error: ") == 1, done.stderr[-3000:]
    assert MlflowClient(uri).get_run(done.stdout.split()[1]).info.status == "KILLED"


def test_the_splits_are_logged_as_datasets_without_a_spark_job(spark, tmp_path, own_store):
    """MLflow's own Spark dataset profile starts a count that runs on after the call; the splits'
    records carry the row counts already known instead, and start no job at all."""
    import mlflow

    from tabular_pipeline.spark.datasets import log_spark_datasets
    from tabular_pipeline.spark.training import SparkSplits

    frame = parquet_frame(spark, mixed_frame(rows=50, seed=2), tmp_path / "t.parquet")
    splits = SparkSplits(frame, frame, "binary", "files-sha256:" + "a" * 64, "files-sha256:" + "b" * 64, "x", 40, 10)
    tracker = spark.sparkContext.statusTracker()
    jobs_before = len(tracker.getJobIdsForGroup())
    with mlflow.start_run() as run:
        log_spark_datasets(splits, LABEL)
    assert len(tracker.getJobIdsForGroup()) == jobs_before, "no Spark job was started"
    inputs = own_store.get_run(run.info.run_id).inputs.dataset_inputs
    profiles = {i.dataset.name: json.loads(i.dataset.profile) for i in inputs}
    assert profiles == {"train": {"num_rows": 40}, "test": {"num_rows": 10}}


def test_screening_finds_keys_without_grouping_every_count_by_them(spark, tmp_path, monkeypatch):
    """The screening's counts take one pass with no grouping key; the exact distinct count that
    proves a key runs apart, and only on id-named whole-number columns with a value on every row
    (with the count in the same aggregation, Spark grouped every count by the key: 40 s for 2).
    Every aggregation `screen_frame` runs is checked, by its physical plan."""
    import re

    from tabular_pipeline.spark.encoding import screen_frame

    rows = 30
    table = pd.DataFrame(
        {
            "row_id": np.arange(rows),  # a key: dropped
            "order_id": np.arange(rows) % 7,  # named like one, repeats: kept
            "ref_id": np.arange(rows) + 0.5,  # unique, not whole numbers: kept
            "code": [f"c{i}" for i in range(rows)],  # a different text on every row: dropped
            "flat": 1.0,
            "gone": np.nan,
            "x": np.linspace(0, 1, rows),
            LABEL: ["a", "b"] * (rows // 2),
        }
    )
    frame = parquet_frame(spark, table, tmp_path / "t.parquet")
    plans = []
    aggregate = type(frame).agg

    def recorded(self, *columns):
        result = aggregate(self, *columns)
        plans.append(result._jdf.queryExecution().executedPlan().toString())
        return result

    monkeypatch.setattr(type(frame), "agg", recorded)
    columns, dropped = screen_frame(frame, LABEL)
    monkeypatch.undo()

    assert dropped == {
        "row_id": "identifier-like (unique whole numbers in a column named like an id)",
        "code": "identifier-like (a different text value on nearly every row)",
        "flat": "constant",
        "gone": "all values missing",
    }
    assert columns.numeric == ["order_id", "ref_id", "x"] and columns.categorical == []
    counts = [plan for plan in plans if "approx_count_distinct" in plan]
    assert len(counts) == 1 and len(plans) == 2, plans
    keys = re.findall(r"Aggregate\(keys=\[([^\]]*)\]", counts[0])
    assert keys and all(key == "" for key in keys), counts[0]
    # The exact count covers the one suspect: order_id repeats but is counted; ref_id is not whole.
    assert "row_id" in plans[1] and "order_id" in plans[1] and "ref_id" not in plans[1], plans[1]
