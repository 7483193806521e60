"""End to end: DolphinScheduler's AutoML line with FLAML, through `main`, registered and served."""

from __future__ import annotations

import json
import shlex
import subprocess
import uuid

import numpy as np
import pytest
import requests
from conftest import PROJECT_DIR, subprocess_env
from fixtures import mixed_frame
from helpers import runs_of
from serving import served_model

pytestmark = pytest.mark.e2e


def test_dolphinscheduler_automl_line_with_flaml(tmp_path, client, tracking_uri):
    table = mixed_frame(400, "binary", seed=5)
    data_file = tmp_path / "customers.csv"
    table.to_csv(data_file, index=False)
    experiment, name = f"automl-{uuid.uuid4().hex[:6]}", f"automl-{uuid.uuid4().hex[:6]}"
    line = (
        f"mlflow run . -P tool=flaml -P data_path={shlex.quote(str(data_file))} "
        f"-P params=\"time_budget=10;estimator_list=['lgbm']\" -P model_name=\"{name}\" --experiment-name=\"{experiment}\""
    )
    completed = subprocess.run(["bash", "-c", line], cwd=PROJECT_DIR, env=subprocess_env(tracking_uri), capture_output=True, text=True, timeout=1500)
    output = completed.stdout + completed.stderr
    print(output[-5000:])
    assert completed.returncode == 0, output[-5000:]

    [train] = runs_of(client, experiment, "train_automl")
    params = train.data.params
    assert params["automl.tool"] == "flaml" and params["automl.time_budget"] == "10.0" and params["automl.best_estimator"] == "lgbm"
    assert params["dropped_columns"] == "customer_id,constant"
    assert {"test_roc_auc", "test_accuracy", "test_f1_macro", "test_log_loss"} <= set(train.data.metrics), "same metric names as train_basic"
    artifacts = {a.path for a in client.list_artifacts(train.info.run_id, "automl")} | {a.path for a in client.list_artifacts(train.info.run_id, "evaluation")}
    assert {"automl/trials.csv", "automl/best.json", "evaluation/roc_curve.png", "evaluation/feature_importance.png"} <= artifacts
    trials = client.download_artifacts(train.info.run_id, "automl/trials.csv", str(tmp_path))
    assert len(open(trials).read().splitlines()) >= 2
    version = client.get_model_version_by_alias(name, "production")
    assert version.run_id == train.info.run_id and version.tags["gate.decision"] == "promoted"

    rows = table.drop(columns=["label"]).head(2).astype({"x2": "float64"})
    rows.loc[0, "x1"], rows.loc[1, "colour"] = np.nan, "ultraviolet"
    with served_model(f"models:/{name}/Production", tracking_uri) as url:
        payload = {"dataframe_records": json.loads(rows.to_json(orient="records")), "params": {"return_probabilities": True}}
        answer = requests.post(f"{url}/invocations", json=payload, timeout=60)
    assert answer.status_code == 200, answer.text
    assert {row["prediction"] for row in answer.json()["predictions"]} <= {"good", "bad"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"tool": "h2o"}, "tool 'h2o' is not supported; expected flaml or autosklearn"),
        ({"tool": "flaml", "params": "time_budget=__import__('os')"}, "is refused (Call is not allowed)"),
        ({"tool": "flaml", "params": "estimator_list=['catboost']"}, "expected learners among"),
    ],
)
def test_bad_tool_or_params_fail_cleanly(params, expected, run_project, client, experiment_name):
    result = run_project("main", params)
    assert result.returncode != 0
    assert any(expected in line for line in result.error_lines()), result.output[-3000:]
    assert "Traceback" not in result.output
    assert all(r.info.status == "FAILED" for r in runs_of(client, experiment_name) if r.data.tags.get("mlflow.project.entryPoint") in ("main", "train_automl"))
