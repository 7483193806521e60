"""End to end: `main -P engine=spark` on a standalone Spark cluster (a master and a worker on
loopback), against the real tracking server; the model it registers serves without Java, and
`predict` on the cluster answers as the scoring server does."""

from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pandas as pd
import pytest
import requests
from conftest import BIN_DIR, subprocess_env
from helpers import runs_of
from serving import served_model

from tabular_pipeline.evaluation.metrics import metrics_from_served_output

pytestmark = pytest.mark.e2e


def churn_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """Strings with missing values, numbers with NaN, a boolean, and a label that is 15% "churn"."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows).astype(float),
            "monthly": rng.normal(70, 20, rows),
            "plan": rng.choice(["basic", "plus", "pro", None], rows, p=[0.5, 0.3, 0.15, 0.05]),
            "paperless": rng.random(rows) > 0.5,
        }
    )
    frame.loc[rng.random(rows) < 0.1, "monthly"] = np.nan
    risk = -frame["tenure"] / 24 + (frame["plan"] == "basic") * 1.5 + rng.normal(0, 0.5, rows)
    frame["label"] = np.where(risk > np.quantile(risk, 0.85), "churn", "stay")
    return frame


# Probabilities that went through JSON sum to one within float rounding only.
@pytest.mark.filterwarnings("ignore:The y_prob values do not sum to one")
def test_main_on_a_cluster_registers_a_model_that_serves_without_java(
    spark_cluster, run_project, client, experiment_name, tracking_uri, tmp_path
):
    import mlflow

    master_url, master_status = spark_cluster
    table = tmp_path / "churn.csv"
    churn_table(1500).to_csv(table, index=False)
    name = f"spark-churn-{uuid.uuid4().hex[:8]}"
    params = {
        "data_path": table,
        "engine": "spark",
        "spark_master": master_url,
        # The server proxies artifacts, which executors never write through: the splits go here.
        "split_path": tmp_path / "splits",
        "algorithm": "xgboost",
        "params": "n_estimators=60;max_depth=4",
        "model_name": name,
    }
    result = run_project("main", params)
    assert result.returncode == 0, result.output[-4000:]
    assert "download     skipped  (engine=spark reads data_path where it is)" in result.output
    assert "Traceback" not in result.output, "a clean run prints no Python trace"
    for noise in ("WARNING: Using incubator modules", "Setting default log level", "setLogLevel", "Hint:", "got rank"):
        assert noise not in result.output, f"one line per step, the report and real problems: {noise}"
    [main_run] = runs_of(client, experiment_name, "main")
    assert main_run.info.run_name == "main: xgboost on Spark on churn.csv"
    names = {r.data.tags["mlflow.project.entryPoint"]: r.info.run_name for r in runs_of(client, experiment_name)}
    assert names["process"] == "process on Spark" and names["train_basic"] == "train_basic on Spark"

    apps = [app["name"] for app in requests.get(master_status, timeout=30).json()["completedapps"]]
    assert {"tabular-pipeline-process", "tabular-pipeline-train"} <= set(apps), "both steps ran on the cluster"
    process = runs_of(client, experiment_name, "process")[0]
    mlflow.set_tracking_uri(tracking_uri)
    split = mlflow.artifacts.load_dict(f"runs:/{process.info.run_id}/processed/splits.json")
    assert split["engine"] == "spark" and split["task"] == "binary"
    assert split["train"]["rows"] + split["test"]["rows"] == 1500
    assert split["train"]["digest"].startswith("files-sha256:")
    assert split["train"]["uri"] == f"{(tmp_path / 'splits').as_uri()}/{process.info.run_id}/train"
    train = runs_of(client, experiment_name, "train_basic")[0]
    assert train.data.tags["pipeline.engine"] == "spark"
    # The pandas engine's rule: classes in sorted order, the last is XGBoost's positive ("stay").
    assert float(train.data.params["hp.scale_pos_weight"]) == pytest.approx(15 / 85, rel=0.15)
    assert train.data.metrics["test_roc_auc"] > 0.8
    assert {d.dataset.digest for d in train.inputs.dataset_inputs} and len(train.inputs.dataset_inputs) == 2
    version = client.get_model_version_by_alias(name, "production")
    assert version.tags["gate.decision"] == "promoted"

    # Served with no Java anywhere on PATH and no JAVA_HOME: the model is plain XGBoost and scikit-learn.
    model_uri = f"models:/{name}@production"
    requirements = mlflow.artifacts.download_artifacts(f"{model_uri}/requirements.txt", dst_path=str(tmp_path / "r"))
    assert "pyspark" not in open(requirements).read()
    no_java = {k: v for k, v in subprocess_env(tracking_uri).items() if k not in ("JAVA_HOME", "SPARK_HOME")}
    # MLflow starts the server through bash: the only other program on PATH.
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "bash").symlink_to("/bin/bash")
    no_java["PATH"] = f"{BIN_DIR}{os.pathsep}{tmp_path / 'tools'}"
    assert not (BIN_DIR / "java").exists()
    rows = churn_table(40, seed=9).drop(columns=["label"])
    rows.loc[0, "plan"] = "enterprise"  # never seen in training
    rows.loc[1, ["tenure", "monthly", "plan"]] = [np.nan, np.nan, None]
    request = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False)), "params": {}}
    kept = pd.read_parquet(
        mlflow.artifacts.download_artifacts(
            f"runs:/{train.info.run_id}/evaluation/test.parquet", dst_path=str(tmp_path)
        )
    )
    kept_request = {
        "dataframe_split": json.loads(
            kept.drop(columns=["label"]).to_json(orient="split", index=False, double_precision=15)
        ),
        "params": {"return_probabilities": True},
    }
    with served_model(model_uri, tracking_uri, env=no_java) as url:
        answer = requests.post(f"{url}/invocations", json=request, timeout=60)
        with_probabilities = requests.post(
            f"{url}/invocations", json={**request, "params": {"return_probabilities": True}}, timeout=60
        )
        on_kept = pd.DataFrame(requests.post(f"{url}/invocations", json=kept_request, timeout=60).json()["predictions"])
    assert answer.status_code == 200, answer.text
    served = pd.Series(answer.json()["predictions"])
    probabilities = pd.DataFrame(with_probabilities.json()["predictions"])
    assert set(served) <= {"churn", "stay"} and list(probabilities.columns) == [
        "prediction",
        "probability_churn",
        "probability_stay",
    ]
    # The served model on the rows the run kept for the gate gives the metrics computed on the cluster.
    assert len(kept) == split["test"]["rows"], "the whole test split: it is under the gate's sample size"
    recomputed = metrics_from_served_output(on_kept, kept["label"], "binary")
    assert {"test_roc_auc", "test_log_loss"} <= recomputed.keys()
    for metric, value in recomputed.items():
        assert train.data.metrics[metric] == pytest.approx(value, abs=1e-6), metric

    # predict on both engines (the Spark one on the cluster) answers as the scoring server did.
    rows.assign(row_id=np.arange(len(rows), dtype=float)).to_parquet(tmp_path / "new.parquet", index=False)
    for engine in ("spark", "pandas"):
        output = tmp_path / f"scored-{engine}.parquet"
        predict_params = {"model_uri": model_uri, "data_path": tmp_path / "new.parquet", "output": output}
        predict_params.update(engine=engine, spark_master=master_url, key_columns="row_id")
        predicted = run_project("predict", predict_params)
        assert predicted.returncode == 0, predicted.output[-3000:]
        assert list(pd.read_parquet(output).sort_values("row_id")["prediction"]) == list(served), engine

    # The same pipeline again: every step is reused (its split folder is still in place).
    again = run_project("main", params)
    assert again.returncode == 0 and "Traceback" not in again.output, again.output[-3000:]
    for step in ("process", "train_basic", "register"):
        assert f"{step:<12} reused" in again.output, step

    # Bad input on this engine: one line, a non-zero exit and a FAILED run, never a traceback.
    on_pandas = run_project("train_basic", {"data_path": f"runs:/{process.info.run_id}/processed", "algorithm": "lr"})
    unlabelled = tmp_path / "unlabelled.csv"
    churn_table(50).drop(columns=["label"]).to_csv(unlabelled, index=False)
    no_label = run_project(
        "process",
        {"data_path": unlabelled, "engine": "spark", "spark_master": "local[1]", "split_path": tmp_path / "s2"},
    )
    automl = run_project("main", {**params, "tool": "flaml"})
    for failed, expected in (
        (on_pandas, "was split by process -P engine=spark; expected -P engine=spark here too"),
        (no_label, "label column 'label' is not in unlabelled.csv"),
        (automl, "the AutoML tool flaml trains on pandas only"),
    ):
        assert failed.returncode != 0 and len(failed.error_lines()) == 1, failed.output[-2000:]
        assert expected in failed.error_lines()[0] and "Traceback" not in failed.output
    statuses = [r.info.status for r in runs_of(client, experiment_name, "train_basic")]
    assert statuses[0] == "FAILED" and runs_of(client, experiment_name, "process")[0].info.status == "FAILED"
