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
    # Earlier results at the targets of the runs that fail mid-way: they must survive untouched.
    partial.write_bytes(b"an earlier result")
    spark_partial.mkdir()
    (spark_partial / "part-00000.parquet").write_bytes(b"an earlier Spark result")
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
    assert partial.read_bytes() == b"an earlier result", "an earlier output survives a failed run"
    assert [p.name for p in spark_partial.iterdir()] == ["part-00000.parquet"], "and so does an earlier Spark folder"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "no staging file is left behind"


def test_an_earlier_output_survives_a_predict_killed_mid_write(trained_model, tracking_uri, experiment_name, tmp_path):
    """SIGKILL while the pandas engine streams batches: the earlier predictions stay whole."""
    import os
    import signal

    rows = make_mixed_table(4000, columns=12, seed=4)
    table, output = tmp_path / "rows.parquet", tmp_path / "scores.parquet"
    rows.to_parquet(table, index=False)
    earlier = b"an earlier result"
    output.write_bytes(earlier)
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


def drifted_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """One scaled number, one mostly missing column, one new dominant category."""
    import numpy as np

    rng = np.random.default_rng(9)
    changed = rows.astype({"cat_00": object})
    changed["num_01"] = changed["num_01"] * 10
    changed.loc[rng.random(len(changed)) < 0.8, "num_02"] = np.nan
    changed.loc[rng.random(len(changed)) < 0.7, "cat_00"] = "a brand new level"
    return changed


def test_predict_measures_drift_against_the_training_profile_on_both_engines(
    trained_model, run_project, client, experiment_name, tmp_path, tracking_uri
):
    import os

    from browser import inked_share, rendered_dom, screenshot

    new_rows = make_mixed_table(1500, columns=12, seed=5).drop(columns=["label"])
    same, changed = tmp_path / "same.parquet", tmp_path / "changed.parquet"
    new_rows.to_parquet(same, index=False)
    drifted_rows(new_rows).to_parquet(changed, index=False)
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

    assert results["same"].returncode == 0, results["same"].output[-3000:]
    assert run["same"].data.metrics["drifted_columns"] == 0 and run["same"].data.tags["monitoring.drifted"] == ""
    assert "no drift in 10 columns" in results["same"].output

    drift = {}
    for case in ("pandas", "spark"):
        assert results[case].returncode == 0, results[case].output[-3000:]
        assert set(run[case].data.tags["monitoring.drifted"].split(",")) == {"num_01", "num_02", "cat_00"}
        assert run[case].data.metrics["drifted_columns"] == 3
        assert "drift in 3 of 10 columns" in results[case].output
        drift[case] = {k: v for k, v in run[case].data.metrics.items() if k.startswith("drift.")}
    assert len(drift["pandas"]) == 10 and drift["pandas"] == pytest.approx(drift["spark"], abs=1e-9), (
        "both engines agree"
    )

    failed = results["fail"]
    assert failed.returncode != 0 and run["fail"].info.status == "FAILED"
    [line] = failed.error_lines()
    assert line.startswith("error: predict: drift in 3 column(s):") and "monitoring/drift_report.html" in line
    assert cases["fail"]["output"].is_file(), "the predictions are written before the run fails"

    import mlflow

    report = mlflow.artifacts.download_artifacts(
        f"runs:/{run['pandas'].info.run_id}/monitoring/drift_report.html",
        dst_path=str(tmp_path / "report"),
        tracking_uri=tracking_uri,
    )
    assert "3 of 10 columns drifted" in rendered_dom(Path(report).as_uri(), budget_ms=3_000)
    shots = Path(os.environ.get("BROWSER_SHOTS_DIR") or tmp_path)
    assert (
        inked_share(screenshot(Path(report).as_uri(), shots / "drift_report.png", height=2200, budget_ms=3_000)) > 0.01
    )
