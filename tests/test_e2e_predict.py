"""End to end: the `predict` entry point on both engines, against a real tracking server."""

from __future__ import annotations

import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import requests
from conftest import PROJECT_DIR, project_command, subprocess_env
from helpers import runs_of

from tabular_pipeline.data.synthetic import make_mixed_table
from tabular_pipeline.scoring.ownership import mark_folder

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained_model(tracking_uri, tmp_path_factory) -> str:
    """A LightGBM model trained by `train_basic` on a generated table with categories and gaps
    (once for this module; predictions run in each test's own experiment)."""
    from mlflow import MlflowClient

    table = tmp_path_factory.mktemp("predict") / "train.csv"
    make_mixed_table(400, columns=12, seed=1).to_csv(table, index=False)
    experiment = f"predict-model-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        project_command("train_basic", {"data_path": table}, experiment),
        capture_output=True,
        text=True,
        env=subprocess_env(tracking_uri),
        cwd=PROJECT_DIR,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return runs_of(MlflowClient(tracking_uri), experiment, "train_basic")[0].data.tags["pipeline.output_uri"]


def scored_table(path) -> pd.DataFrame:
    """A predictions file or Spark folder, in row order."""
    return pd.read_parquet(path).sort_values("row_id").reset_index(drop=True)


def test_pandas_and_spark_engines_give_identical_predictions(
    trained_model, spark_cluster, run_project, client, experiment_name, tracking_uri, tmp_path
):
    """The pandas engine, and the Spark engine on a `spark://` cluster (local sessions are covered
    by the failure cases below), against each other and against the model in-process."""
    master_url, master_status = spark_cluster
    import mlflow

    new_rows = make_mixed_table(300, columns=12, seed=2).drop(columns=["label"])
    csv_input, parquet_input = tmp_path / "new.csv", tmp_path / "new.parquet"
    new_rows.to_csv(csv_input, index=False)
    new_rows.to_parquet(parquet_input, index=False)
    pandas_output, spark_output = tmp_path / "pandas.parquet", tmp_path / "spark.parquet"

    # batch_rows=64 makes the pandas engine stream five batches. The row id is a model input too
    # (the model takes raw rows and drops it itself), so it is named as the key.
    result = run_project(
        "predict",
        {
            "model_uri": trained_model,
            "data_path": csv_input,
            "output": pandas_output,
            "batch_rows": 64,
            "key_columns": "row_id",
        },
    )
    assert result.returncode == 0, result.output[-3000:]
    spark_params = {
        "model_uri": trained_model,
        "data_path": parquet_input,
        "output": spark_output,
        "engine": "spark",
        "spark_master": master_url,
        "key_columns": "row_id",
    }
    result = run_project("predict", spark_params)
    assert result.returncode == 0, result.output[-3000:]

    cluster_apps = requests.get(master_status, timeout=30).json()
    assert "tabular-pipeline-predict" in [app["name"] for app in cluster_apps["completedapps"]], (
        "the job ran on the cluster"
    )
    from_pandas, from_spark = scored_table(pandas_output), scored_table(spark_output)
    assert spark_output.is_dir(), "Spark writes a folder of part files"
    assert list(from_pandas.columns) == ["row_id", "prediction"], "key columns (the row id) plus predictions"
    pd.testing.assert_frame_equal(from_pandas, from_spark)
    # And both equal the model's own answer in-process.
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(trained_model)
    expected = model.predict(pd.read_csv(csv_input).astype({"row_id": "float64"}))
    assert (from_pandas["prediction"].to_numpy() == expected).all()

    runs = runs_of(client, experiment_name, "predict")
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    for run, output in zip(runs, [spark_output, pandas_output], strict=True):
        assert run.data.metrics["rows_scored"] == 300
        assert run.data.metrics["rows_per_second"] > 0
        assert run.data.metrics["peak_memory_mb"] > 0
        assert run.data.tags["pipeline.output_uri"] == str(output)
    assert "scored 300 rows" in result.output

    # The next day's run into the same paths replaces predict's own outputs, on both engines.
    fewer = new_rows.head(120)
    fewer.to_csv(csv_input, index=False)
    fewer.to_parquet(parquet_input, index=False)
    for params in ({"model_uri": trained_model, "data_path": csv_input, "output": pandas_output}, spark_params):
        again = run_project("predict", {**params, "key_columns": "row_id"})
        assert again.returncode == 0, again.output[-3000:]
        assert f"replacing {params['output']} (an earlier predict output)" in again.output
        assert len(scored_table(params["output"])) == 120


def test_predictions_default_to_a_run_artifact_and_bad_input_fails_in_one_line(
    trained_model, run_project, client, experiment_name, tracking_uri, tmp_path
):
    import mlflow

    rows = make_mixed_table(50, columns=12, seed=3)
    table = tmp_path / "rows.csv"
    rows.to_csv(table, index=False)
    result = run_project("predict", {"model_uri": trained_model, "data_path": table, "key_columns": "row_id,label"})
    assert result.returncode == 0, result.output[-3000:]
    run = runs_of(client, experiment_name, "predict")[0]
    location = run.data.tags["pipeline.output_uri"]
    assert location == f"runs:/{run.info.run_id}/predictions/predictions.parquet"
    downloaded = mlflow.artifacts.download_artifacts(
        location, dst_path=str(tmp_path / "fetched"), tracking_uri=tracking_uri
    )
    scored = pd.read_parquet(downloaded)
    assert list(scored.columns) == ["row_id", "label", "prediction"] and len(scored) == 50
    assert (scored["prediction"] == scored["label"]).mean() > 0.6, "the model learned something"

    missing, text = tmp_path / "missing.csv", tmp_path / "text.csv"
    rows.drop(columns=["num_00"]).to_csv(missing, index=False)
    rows.assign(num_01=rows["num_01"].astype(object).where(rows.index != 40, "oops")).to_csv(text, index=False)
    # Text that reads as numbers until row 40: batches 1-4 are written before batch 5 fails.
    late_text = tmp_path / "late_text.parquet"
    numbers_as_text = rows["num_01"].map(lambda value: None if pd.isna(value) else repr(float(value)))
    rows.assign(num_01=numbers_as_text.where(rows.index != 40, "oops")).to_parquet(late_text, index=False)
    never, partial, spark_partial = (
        tmp_path / "never.parquet",
        tmp_path / "partial.parquet",
        tmp_path / "spark_partial.parquet",
    )
    # Earlier results of predict at the targets of the runs that fail mid-way: they must survive
    # untouched; and a user's own files at two targets, which predict must refuse to replace.
    partial_bytes = earlier_output(partial)
    spark_partial.mkdir()
    (spark_partial / "part-00000.parquet").write_bytes(b"an earlier Spark result")
    mark_folder(spark_partial, {"written_by": "tabular-pipeline predict", "run_id": "earlier"})
    report, customers = tmp_path / "report.csv", tmp_path / "customers.parquet"
    report.write_text("region,revenue\nnorth,10\n")
    customers.mkdir()
    for name in ("part-00000-abc.snappy.parquet", "_SUCCESS"):
        (customers / name).write_bytes(b"the user's table")
    parts = tmp_path / "parts.parquet"
    parts.mkdir()
    rows.to_parquet(parts / "part-0.parquet", index=False)
    input_bytes = table.read_bytes()
    cases = [
        ({"data_path": table, "output": table}, "overlaps the input"),
        (
            {"data_path": parts, "output": parts / "scores.parquet", "engine": "spark", "spark_master": "local[1]"},
            "overlaps the input",
        ),
        ({"data_path": table, "output": "scores.csv"}, "is a relative path; expected an absolute path"),
        ({"data_path": late_text, "output": partial, "batch_rows": 10}, "column 'num_01' cannot be read as double"),
        (
            {"data_path": late_text, "output": spark_partial, "engine": "spark", "spark_master": "local[1]"},
            "column 'num_01' cannot be read as double",
        ),
        ({"data_path": missing, "output": never}, "lacks 1 column(s) the model needs (num_00)"),
        ({"data_path": text, "output": never}, "column 'num_01' cannot be read as double"),
        ({"data_path": table, "engine": "dask"}, "engine 'dask' is not supported"),
        ({"data_path": table, "engine": "spark", "spark_master": "local[2]; rm -rf /"}, "is not a Spark master URL"),
        ({"data_path": table, "output": tmp_path / "scores.xlsx"}, "must end in .parquet or .csv"),
        ({"data_path": table, "output": report}, f"output {report} is a file predict did not write"),
        (
            {"data_path": table, "output": customers, "engine": "spark", "spark_master": "local[1]"},
            f"output {customers} is a folder predict did not write",
        ),
        ({"data_path": table, "batch_rows": 0}, "batch_rows is 0"),
        ({"data_path": tmp_path / "absent.csv"}, "does not exist"),
        ({"data_path": table, "model_uri": "models:/no-such-model/1"}, "does not exist"),
        ({"data_path": table, "model_uri": "s3://bucket/model"}, "is not a model URI"),
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda case: run_project("predict", {"model_uri": trained_model, **case[0]}), cases))
    for (params, message), result in zip(cases, results, strict=True):
        assert result.returncode != 0, params
        assert len(result.error_lines()) == 1 and message in result.error_lines()[0], result.output[-2000:]
        assert "Traceback" not in result.output
    statuses = [r.info.status for r in runs_of(client, experiment_name, "predict")]
    assert statuses.count("FAILED") == len(cases) and statuses.count("FINISHED") == 1, statuses
    assert not never.exists() and not (tmp_path / "scores.xlsx").exists()
    assert table.read_bytes() == input_bytes, "the input was not written over"
    assert sorted(p.name for p in parts.iterdir()) == ["part-0.parquet"]
    assert not (PROJECT_DIR / "scores.csv").exists()
    assert partial.read_bytes() == partial_bytes, "an earlier output survives a failed run"
    assert sorted(p.name for p in spark_partial.iterdir()) == ["_PREDICT_OUTPUT.json", "part-00000.parquet"], (
        "and so does an earlier Spark folder"
    )
    assert report.read_text() == "region,revenue\nnorth,10\n", "a user's file is never replaced"
    assert sorted(p.name for p in customers.iterdir()) == ["_SUCCESS", "part-00000-abc.snappy.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "no staging file is left behind"


def test_an_earlier_output_survives_a_predict_killed_mid_write(trained_model, tracking_uri, experiment_name, tmp_path):
    """SIGKILL while the pandas engine streams batches: the earlier predictions stay whole."""
    import os
    import signal

    rows = make_mixed_table(4000, columns=12, seed=4)
    table, output = tmp_path / "rows.parquet", tmp_path / "scores.parquet"
    rows.to_parquet(table, index=False)
    earlier = earlier_output(output)
    params = {"model_uri": trained_model, "data_path": table, "output": output, "batch_rows": 5}
    process = subprocess.Popen(
        project_command("predict", params, experiment_name),
        cwd=PROJECT_DIR,
        env=subprocess_env(tracking_uri),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not [p for p in tmp_path.iterdir() if p.name.startswith(".scores.parquet.partial-")]:
            assert process.poll() is None, process.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the staged output never appeared"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert output.read_bytes() == earlier, "the earlier output is untouched"


def earlier_output(path: Path) -> bytes:
    """An output an earlier predict wrote at `path` (marked as predict's); returns its bytes."""
    import pyarrow as pa

    from tabular_pipeline.scoring.batch import TableWriter
    from tabular_pipeline.scoring.ownership import output_record

    writer = TableWriter(path, path.suffix.lstrip("."), output_record("earlier", "models:/earlier/1"))
    writer.write(pa.table({"prediction": ["an earlier result"]}))
    writer.commit()
    return path.read_bytes()


def drifted_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """One scaled number, one mostly missing column, one new dominant category."""
    import numpy as np

    rng = np.random.default_rng(9)
    changed = rows.astype({"cat_00": object})
    changed["num_01"] = changed["num_01"] * 10
    changed.loc[rng.random(len(changed)) < 0.8, "num_02"] = np.nan
    changed.loc[rng.random(len(changed)) < 0.7, "cat_00"] = "a brand new level"
    return changed


def test_predict_measures_drift_and_performance_on_both_engines_and_shows_them_over_time(
    trained_model, run_project, client, experiment_name, tmp_path, tracking_uri
):
    """Drift, realized and estimated performance on both engines (equal figures), fail_on_drift,
    and the report's time series of this model's scoring runs, looked at in Chromium.

    The changed table holds the label, and its flag column as the text "True"/"False": both
    engines count it as cast for the model (a boolean), so it does not drift."""
    import os

    import mlflow
    from browser import inked_share, rendered_dom, screenshot

    new_rows = make_mixed_table(1500, columns=12, seed=5)
    same, changed = tmp_path / "same.parquet", tmp_path / "changed.parquet"
    new_rows.drop(columns=["label"]).to_parquet(same, index=False)
    drifted_rows(new_rows).assign(flag=new_rows["flag"].map({True: "True", False: "False"})).to_parquet(
        changed, index=False
    )
    cases = {
        "same": {"data_path": same, "output": tmp_path / "same_scores.parquet"},
        "pandas": {"data_path": changed, "output": tmp_path / "pandas_scores.parquet", "batch_rows": 400},
        "spark": {
            "data_path": changed,
            "output": tmp_path / "spark_scores.parquet",
            "engine": "spark",
            "spark_master": "local[1]",
        },
        "fail": {"data_path": changed, "output": tmp_path / "failed_scores.parquet", "fail_on_drift": "true"},
    }
    # Created here: two `mlflow run`s creating one new experiment at once race in MLflow's CLI.
    client.create_experiment(experiment_name)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(
            zip(
                cases,
                pool.map(
                    lambda p: run_project("predict", {"model_uri": trained_model, "key_columns": "row_id", **p}),
                    cases.values(),
                ),
                strict=True,
            )
        )
    runs = {r.data.params["output"]: r for r in runs_of(client, experiment_name, "predict")}
    run = {case: runs[str(params["output"])] for case, params in cases.items()}
    training = client.get_run(client.get_logged_model(trained_model.split("/")[-1]).source_run_id)
    test_metrics = {name: value for name, value in training.data.metrics.items() if name.startswith("test_")}

    assert results["same"].returncode == 0, results["same"].output[-3000:]
    assert run["same"].data.metrics["drifted_columns"] == 0 and run["same"].data.tags["monitoring.drifted"] == ""
    assert "no drift in 10 columns" in results["same"].output
    same_metrics = run["same"].data.metrics
    assert not [name for name in same_metrics if name.startswith("realized.")], "no label, nothing realized"
    assert set(name for name in same_metrics if name.startswith("estimated.")) == {
        "estimated.test_roc_auc",
        "estimated.test_accuracy",
    }
    assert "estimated test_roc_auc" in results["same"].output

    figures = {}
    for case in ("pandas", "spark"):
        assert results[case].returncode == 0, results[case].output[-3000:]
        assert set(run[case].data.tags["monitoring.drifted"].split(",")) == {"num_01", "num_02", "cat_00"}
        assert run[case].data.metrics["drifted_columns"] == 3
        assert "drift in 3 of 10 columns" in results[case].output
        assert run[case].data.tags["monitoring.dataset_drifted"] == "false", "3 of 10 is under the 0.5 share"
        metrics = run[case].data.metrics
        figures[case] = {k: v for k, v in metrics.items() if k.startswith(("drift", "realized.", "estimated."))}
        # The realized figures are the training run's test metrics, by name, on this table's labels.
        assert {k for k in metrics if k.startswith("realized.")} == {f"realized.{k}" for k in test_metrics}
    assert len(figures["pandas"]) == 10 + 10 + 2 + 6 + 2, sorted(figures["pandas"])
    assert figures["pandas"] == pytest.approx(figures["spark"], abs=1e-9), "both engines agree"
    assert "env_manager" not in results["spark"].output, "MLflow's advice against env_manager=local is noise here"
    assert run["pandas"].data.tags["monitoring.degraded"] in ("", "realized", "estimated", "realized,estimated")
    recorded, realized = test_metrics["test_roc_auc"], figures["pandas"]["realized.test_roc_auc"]
    assert (realized < recorded - 0.05) == ("realized" in run["pandas"].data.tags["monitoring.degraded"])
    # Recomputed from the rows: the served model's probabilities on the changed table, by scikit-learn.
    from sklearn.metrics import accuracy_score, roc_auc_score

    from tabular_pipeline.serving.model import PROBABILITIES_PARAM

    mlflow.set_tracking_uri(tracking_uri)
    rows = drifted_rows(new_rows)  # the flag as the boolean the engines cast its text to
    rows = rows.astype({name: object for name in rows.columns if str(rows[name].dtype) == "category"})
    answer = mlflow.pyfunc.load_model(trained_model).predict(
        rows.drop(columns=["label"]).astype({"row_id": "float64"}), params={PROBABILITIES_PARAM: True}
    )
    truth = rows["label"].astype(int)
    assert realized == pytest.approx(roc_auc_score(truth, answer["probability_1"]), abs=1e-12)
    assert figures["spark"]["realized.test_accuracy"] == pytest.approx(
        accuracy_score(truth, answer["prediction"].astype(int)), abs=1e-12
    )

    failed = results["fail"]
    assert failed.returncode != 0 and run["fail"].info.status == "FAILED"
    [line] = failed.error_lines()
    assert line.startswith("error: predict: drift in 3 column(s):") and "monitoring/drift_report.html" in line
    assert cases["fail"]["output"].is_file(), "the predictions are written before the run fails"

    # A later run (no key columns: the label is left out, rows are numbered) shows every scoring run
    # of this model the server holds, this one last.
    later = run_project("predict", {"model_uri": trained_model, "data_path": changed, "output": tmp_path / "l.parquet"})
    assert later.returncode == 0, later.output[-3000:]
    assert list(pd.read_parquet(tmp_path / "l.parquet").columns) == ["row_number", "prediction"]
    later_run = runs_of(client, experiment_name, "predict")[0]
    model_key = later_run.data.tags["monitoring.model"]
    held = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], f"tags.`monitoring.model` = '{model_key}'"
    )
    assert len(held) >= 5 and later_run.info.run_id in {r.info.run_id for r in held}
    report = mlflow.artifacts.download_artifacts(
        f"runs:/{later_run.info.run_id}/monitoring/drift_report.html",
        dst_path=str(tmp_path / "report"),
        tracking_uri=tracking_uri,
    )
    dom = rendered_dom(Path(report).as_uri(), budget_ms=3_000)
    assert "3 of 10 columns drifted" in dom and f"This model's last {len(held)} scoring run(s)" in dom
    assert dom.count("drifted column(s)</title>") == len(held), "one bar per run on the server"
    assert dom.index(">num_01<") < dom.index(">num_00<"), "drifted columns first"
    shots = Path(os.environ.get("BROWSER_SHOTS_DIR") or tmp_path)
    assert (
        inked_share(screenshot(Path(report).as_uri(), shots / "drift_report.png", height=2600, budget_ms=3_000)) > 0.01
    )
