"""End to end: DolphinScheduler's AutoML line with FLAML, AutoGluon and auto-sklearn, through `main`,
registered and served over HTTP."""

from __future__ import annotations

import json
import shlex
import subprocess
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from conftest import PROJECT_DIR, subprocess_env
from fixtures import mixed_frame
from helpers import runs_of
from serving import served_model

pytestmark = pytest.mark.e2e


def run_automl_line(
    tmp_path,
    tracking_uri,
    tool: str,
    params: str,
    rows: int,
    seed: int,
    project: str = ".",
    timeout_s: float = 1500,
    temp_dir: Path | None = None,
):
    """Write a mixed table and run DolphinScheduler's AutoML line on it verbatim (against `project`,
    this repository or its Project-AutoML preset, with TMPDIR at `temp_dir` when given); returns
    (table, experiment, model name, data file) once it has succeeded."""
    table = mixed_frame(rows, "binary", seed=seed)
    data_file = tmp_path / "customers.csv"
    table.to_csv(data_file, index=False)
    experiment, name = f"{tool}-{uuid.uuid4().hex[:6]}", f"{tool}-{uuid.uuid4().hex[:6]}"
    line = (
        f"mlflow run {project} -P tool={tool} -P data_path={shlex.quote(str(data_file))} "
        f'-P params="{params}" -P model_name="{name}" --experiment-name="{experiment}"'
    )
    completed = subprocess.run(
        ["bash", "-c", line],
        cwd=PROJECT_DIR,
        env=subprocess_env(tracking_uri, **({"TMPDIR": str(temp_dir)} if temp_dir else {})),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    output = completed.stdout + completed.stderr
    print(output[-5000:])
    assert completed.returncode == 0, output[-5000:]
    return table, experiment, name, data_file, output


def probabilities_from_dolphinscheduler_serve_line(name: str, tracking_uri: str, rows: pd.DataFrame) -> list[dict]:
    """Serve `models:/<name>/Production` with the default (virtualenv) env manager, as DolphinScheduler
    does, and ask it for labels and probabilities of `rows`."""
    with served_model(f"models:/{name}/Production", tracking_uri, env_manager="virtualenv", timeout_s=600) as url:
        payload = {
            "dataframe_records": json.loads(rows.to_json(orient="records")),
            "params": {"return_probabilities": True},
        }
        answer = requests.post(f"{url}/invocations", json=payload, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


@pytest.mark.usefixtures("project_virtualenv")
def test_dolphinscheduler_automl_line_with_flaml(tmp_path, client, tracking_uri):
    table, experiment, name, _, _ = run_automl_line(
        tmp_path, tracking_uri, "flaml", "time_budget=10;estimator_list=['lgbm']", 400, 5
    )

    [train] = runs_of(client, experiment, "train_automl")
    params = train.data.params
    assert (
        params["automl.tool"] == "flaml"
        and params["automl.time_budget"] == "10.0"
        and params["automl.best_estimator"] == "lgbm"
    )
    assert params["dropped_columns"] == "customer_id,constant"
    assert {"test_roc_auc", "test_accuracy", "test_f1_macro", "test_log_loss"} <= set(train.data.metrics), (
        "same metric names as train_basic"
    )
    artifacts = {a.path for a in client.list_artifacts(train.info.run_id, "automl")} | {
        a.path for a in client.list_artifacts(train.info.run_id, "evaluation")
    }
    assert {
        "automl/trials.csv",
        "automl/best.json",
        "evaluation/roc_curve.png",
        "evaluation/feature_importance.png",
    } <= artifacts
    trials = client.download_artifacts(train.info.run_id, "automl/trials.csv", str(tmp_path))
    assert len(open(trials).read().splitlines()) >= 2
    version = client.get_model_version_by_alias(name, "production")
    assert version.run_id == train.info.run_id and version.tags["gate.decision"] == "promoted"

    rows = table.drop(columns=["label"]).head(2).astype({"x2": "float64"})
    rows.loc[0, "x1"], rows.loc[1, "colour"] = np.nan, "ultraviolet"
    with served_model(f"models:/{name}/Production", tracking_uri) as url:
        payload = {
            "dataframe_records": json.loads(rows.to_json(orient="records")),
            "params": {"return_probabilities": True},
        }
        answer = requests.post(f"{url}/invocations", json=payload, timeout=60)
    assert answer.status_code == 200, answer.text
    assert {row["prediction"] for row in answer.json()["predictions"]} <= {"good", "bad"}


# 14 s of search (time_limit=20 less at least 6 s) and a refit; the rest is the pipeline's processes and, on a
# fresh machine, building the project's and the model's virtualenvs (about 2.5 and 1.5 minutes here).
@pytest.mark.timeout(900)
@pytest.mark.usefixtures("project_virtualenv")
def test_dolphinscheduler_automl_line_with_autogluon_through_the_preset(tmp_path, client, tracking_uri, monkeypatch):
    """AutoGluon through the Project-AutoML preset: leaderboard, ensemble, gate, and DolphinScheduler's
    serve line (the default env manager builds the model's own environment) answering raw rows."""
    # CatBoost and XGBoost excluded: the model's serving environment then needs LightGBM alone.
    table, experiment, name, _, output = run_automl_line(
        tmp_path, tracking_uri, "autogluon", "time_limit=20;excluded_model_types=['CAT','XGB']", 400, 11,
        project="Project-AutoML", timeout_s=600,
    )  # fmt: skip
    assert "Traceback" not in output and "Warning" not in output and "torch" not in output, output[-3000:]
    assert "it/s]" not in output, "no artifact progress bars in a step's log"

    [train] = runs_of(client, experiment, "train_automl")
    params, metrics = train.data.params, train.data.metrics
    assert params["automl.tool"] == "autogluon" and params["automl.time_limit"] == "20.0"
    assert params["automl.presets"] == "medium_quality" and params["automl.eval_metric"] == "roc_auc"
    assert params["automl.hyperparameters"] == "zeroshot" and params["automl.search_time_limit"] == "14.0"
    assert (params["automl.bag_folds_used"], params["automl.stack_levels_used"]) == ("5", "0"), "the default bags"
    assert params["automl.bag_min_budget"] == "3.0", "10 ms for each of the 300 training rows: 20 s is enough to bag"
    assert params["automl.excluded_model_types"] == "['CAT', 'XGB']"
    assert params["dropped_columns"] == "customer_id,constant"
    best = params["automl.best_estimator"]
    assert best.endswith("_FULL"), "the default refits the best ensemble on all rows"
    members = dict(item.split(":") for item in params["automl.ensemble"].split(","))
    assert members and abs(sum(map(float, members.values())) - 1) < 0.01
    assert {"test_roc_auc", "test_log_loss", "automl_trials", "automl_ensemble_size"} <= set(metrics)
    assert metrics["automl_ensemble_size"] == len(members) and metrics["test_roc_auc"] > 0.7
    assert 0.5 < metrics["automl_best_validation_score"] <= 1
    leaderboard = pd.read_csv(client.download_artifacts(train.info.run_id, "automl/leaderboard.csv", str(tmp_path)))
    assert best in set(leaderboard["model"]) and len(leaderboard) == metrics["automl_trials"] >= 2
    assert leaderboard["model"].str.startswith(("LightGBM", "RandomForest", "ExtraTrees")).any()
    assert not leaderboard["model"].str.startswith(("CatBoost", "XGBoost", "NeuralNet")).any(), "excluded types"
    artifacts = {a.path for a in client.list_artifacts(train.info.run_id)} | {
        a.path for a in client.list_artifacts(train.info.run_id, "evaluation")
    }
    assert {"card.html", "evaluation/roc_curve.png", "evaluation/feature_importance.csv"} <= artifacts
    assert {d.dataset.name for d in train.inputs.dataset_inputs} == {"train", "test"}, "lineage as for other tools"
    version = client.get_model_version_by_alias(name, "production")
    assert version.run_id == train.info.run_id and version.tags["gate.decision"] == "promoted"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    model_dir = Path(mlflow.artifacts.download_artifacts(version.source, dst_path=str(tmp_path / "model")))
    assert (model_dir / "artifacts" / "predictor" / "predictor.pkl").is_file(), "the predictor travels in the model"
    requirements = (model_dir / "requirements.txt").read_text()
    assert "autogluon.tabular==1.6.3" in requirements and "catboost" not in requirements
    lineage = json.loads(version.tags["lineage"])
    assert lineage["training_run_id"] == train.info.run_id and lineage["entry_point"] == "train_automl"

    rows = (
        table.drop(columns=["label"]).head(3).astype({"x2": "float64", "customer_id": "float64", "constant": "float64"})
    )
    rows.loc[0, "x1"], rows.loc[1, "colour"] = np.nan, "ultraviolet"
    local = mlflow.pyfunc.load_model(str(model_dir)).predict(rows, params={"return_probabilities": True})
    # DolphinScheduler's serve line: the default env manager builds the model's recorded environment.
    served = pd.DataFrame(probabilities_from_dolphinscheduler_serve_line(name, tracking_uri, rows))
    assert list(served["prediction"]) == list(local["prediction"]) and set(served["prediction"]) <= {"good", "bad"}
    np.testing.assert_allclose(served["probability_good"], local["probability_good"], rtol=0, atol=1e-6)


@pytest.mark.usefixtures("project_virtualenv")
def test_dolphinscheduler_automl_line_with_autosklearn(tmp_path, client, tracking_uri, monkeypatch):
    """auto-sklearn runs in its own Python 3.9 env (built here if missing) and is served from it."""
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    table, experiment, name, data_file, _ = run_automl_line(
        tmp_path, tracking_uri, "autosklearn", "time_left_for_this_task=30;per_run_time_limit=10", 300, 7,
        temp_dir=temp_dir,
    )  # fmt: skip
    # The worker's MLflow run folder went with the step's scratch; what is left is the one empty
    # folder the `mlflow run` CLI itself makes for every run (MLflow's, never removed).
    left = list(temp_dir.iterdir())
    assert len(left) == 1 and left[0].is_dir() and not any(left[0].iterdir()), sorted(path.name for path in left)

    [train] = runs_of(client, experiment, "train_automl")
    [worker] = runs_of(client, experiment, "search")
    assert worker.info.status == "FINISHED" and worker.data.tags["mlflow.parentRunId"] == train.info.run_id
    assert train.data.tags["pipeline.worker_run_id"] == worker.info.run_id
    params = train.data.params
    assert params["automl.tool"] == "autosklearn" and params["automl.time_left_for_this_task"] == "30"
    assert params["automl.per_run_time_limit"] == "10" and params["automl.best_estimator"]
    assert any(key.startswith("best.") for key in params), "the best configuration is logged"
    assert params["dropped_columns"] == "customer_id,constant"
    metrics = train.data.metrics
    assert {"test_roc_auc", "test_accuracy", "test_f1_macro", "test_log_loss", "automl_trials"} <= set(metrics)
    assert metrics["test_roc_auc"] > 0.7
    artifacts = {a.path for a in client.list_artifacts(train.info.run_id, "automl")} | {
        a.path for a in client.list_artifacts(train.info.run_id, "evaluation")
    }
    assert {
        "automl/trials.csv",
        "automl/best.json",
        "evaluation/roc_curve.png",
        "evaluation/feature_importance.csv",
        "evaluation/test.parquet",
    } <= artifacts
    trials = pd.read_csv(client.download_artifacts(train.info.run_id, "automl/trials.csv", str(tmp_path)))
    assert len(trials) == metrics["automl_trials"] >= 1 and {
        "learner",
        "config",
        "validation_score",
        "trial_time_s",
    } <= set(trials.columns)

    version = client.get_model_version_by_alias(name, "production")
    assert version.run_id == train.info.run_id and version.tags["gate.decision"] == "promoted"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    model_dir = Path(mlflow.artifacts.download_artifacts(version.source, dst_path=str(tmp_path / "model")))
    assert 'python: "3.9.18"' in (model_dir / "python_env.yaml").read_text()
    assert "auto-sklearn==0.15.0" in (model_dir / "requirements.txt").read_text()

    rows = table.drop(columns=["label"]).head(2).astype({"x2": "float64"})
    rows.loc[0, "x1"], rows.loc[1, "colour"] = np.nan, "ultraviolet"
    # DolphinScheduler's serve line: the default env manager rebuilds the model's recorded env (3.9).
    predictions = probabilities_from_dolphinscheduler_serve_line(name, tracking_uri, rows)
    assert {row["prediction"] for row in predictions} <= {"good", "bad"}
    assert all(abs(row["probability_good"] + row["probability_bad"] - 1) < 1e-6 for row in predictions)

    # A challenger from train_basic: the gate scores this Python 3.9 champion in its own environment.
    challenger = (
        f"mlflow run . --env-manager local -P data_path={shlex.quote(str(data_file))} -P algorithm=LogisticRegression "
        f"-P model_name={name} --experiment-name={experiment}"
    )
    completed = subprocess.run(
        ["bash", "-c", challenger],
        cwd=PROJECT_DIR,
        env=subprocess_env(tracking_uri),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-5000:]
    [register] = [
        r for r in runs_of(client, experiment, "register") if r.data.tags.get("pipeline.registered_version") == "2"
    ]
    assert "gate_champion_score" in register.data.metrics, register.data.tags.get("pipeline.gate_reason")
    assert "champion's" in register.data.tags["pipeline.gate_reason"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"tool": "h2o"}, "tool 'h2o' is not supported; expected flaml, autogluon or autosklearn"),
        ({"tool": "flaml", "params": "time_budget=__import__('os')"}, "is refused (Call is not allowed)"),
        ({"tool": "flaml", "params": "estimator_list=['catboost']"}, "expected learners among"),
        (
            {"tool": "AutoGluon", "params": "presets='extreme_quality'"},
            "presets 'extreme_quality' needs PyTorch and downloaded foundation-model weights",
        ),
        (
            {"tool": "autosklearn", "time_budget": "10"},
            "the auto-sklearn budget is 10 s; expected between 30 and 86400 seconds",
        ),
        (
            {"tool": "AutoSklearn", "params": "ensemble_size=3"},
            "unknown hyperparameter 'ensemble_size' for algorithm 'autosklearn'",
        ),
        (
            {"tool": "auto-sklearn", "params": "include_estimators=['catboost']"},
            "include_estimators holds ['catboost']",
        ),
    ],
)
def test_bad_tool_or_params_fail_cleanly(params, expected, run_project, client, experiment_name):
    result = run_project("main", params)
    assert result.returncode != 0
    assert any(expected in line for line in result.error_lines()), result.output[-3000:]
    assert "Traceback" not in result.output
    assert all(
        r.info.status == "FAILED"
        for r in runs_of(client, experiment_name)
        if r.data.tags.get("mlflow.project.entryPoint") in ("main", "train_automl")
    )
