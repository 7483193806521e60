"""End to end: the `main` pipeline through `mlflow run`, asserting on what the tracking server holds."""

from __future__ import annotations

import json
import shlex
import subprocess
import uuid

import mlflow
import pandas as pd
import pytest
from conftest import PROJECT_DIR, subprocess_env
from helpers import runs_of
from readme import readme_block_containing

pytestmark = pytest.mark.e2e
SAMPLE = PROJECT_DIR / "data" / "breast_cancer.csv"
STEPS = ("download", "process", "train_basic", "register")


def unique_model_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def step_lines(output: str, entry_point: str, word: str) -> list[str]:
    return [line for line in output.splitlines() if f"[main] {entry_point:<12} {word}" in line]


def test_main_runs_the_whole_pipeline_then_reuses_then_reruns(
    tmp_path, run_project, client, experiment_name, tracking_uri
):
    name = unique_model_name("bc")
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    first = run_project("main", {"model_name": name}, env={"TMPDIR": str(temp_dir)})
    assert first.returncode == 0, first.output
    # Nothing left in the temporary folder but the one empty folder the `mlflow run` CLI itself
    # makes for every run (MLflow's, never removed); `main` once left one more per step.
    left = list(temp_dir.iterdir())
    assert len(left) == 1 and left[0].is_dir() and not any(left[0].iterdir()), sorted(path.name for path in left)

    [main_run] = runs_of(client, experiment_name, "main")
    assert main_run.info.status == "FINISHED"
    children = {ep: runs_of(client, experiment_name, ep) for ep in STEPS}
    for entry_point, runs in children.items():
        assert len(runs) == 1, entry_point
        assert runs[0].info.status == "FINISHED"
        assert runs[0].data.tags["mlflow.parentRunId"] == main_run.info.run_id
        assert runs[0].data.tags["pipeline.code_version"] == main_run.data.tags["pipeline.code_version"]
        assert f"[main] {entry_point:<12} finished" in first.output

    download = children["download"][0]
    assert [a.path for a in client.list_artifacts(download.info.run_id, "raw")] == ["raw/breast_cancer.parquet"]
    [dataset_input] = download.inputs.dataset_inputs
    assert dataset_input.dataset.digest and download.data.tags["pipeline.output_digest"].startswith("sha256:")

    process = children["process"][0]
    assert process.data.params["data_path"] == f"runs:/{download.info.run_id}/raw"
    assert {a.path for a in client.list_artifacts(process.info.run_id, "processed")} == {
        "processed/train.parquet",
        "processed/test.parquet",
        "processed/schema.json",
        "processed/profile.json",
    }
    assert process.data.metrics["train_rows"] == 426 and process.data.metrics["test_rows"] == 143

    train = children["train_basic"][0]
    assert train.data.params["data_path"] == f"runs:/{process.info.run_id}/processed"
    assert train.data.params["algorithm"] == "lightgbm"
    assert train.data.params["hp.n_estimators"] == "500" and train.data.params["hp.stopping_rounds"] == "30"
    assert train.data.metrics["test_roc_auc"] > 0.95
    assert main_run.data.metrics["test_roc_auc"] == train.data.metrics["test_roc_auc"]
    model_uri = train.data.tags["pipeline.output_uri"]
    assert model_uri.startswith("models:/m-")

    version = client.get_model_version_by_alias(name, "production")
    assert version.version == "1" and version.current_stage == "Production"
    assert children["register"][0].data.params["model_uri"] == model_uri
    mlflow.set_tracking_uri(tracking_uri)
    rows = pd.read_csv(SAMPLE).drop(columns=["label"]).astype("float64").head(5)
    for uri in (f"models:/{name}/Production", f"models:/{name}@production"):
        predictions = mlflow.pyfunc.load_model(uri).predict(rows)
        assert set(predictions) <= {0, 1} and len(predictions) == 5
    assert f"models:/{name}/1" in first.output and f"serve MODEL_URI=models:/{name}@production" in first.output

    # Unchanged inputs: every step is reused (register too: its version still holds the alias).
    second = run_project("main", {"model_name": name})
    assert second.returncode == 0, second.output
    for entry_point in STEPS:
        assert step_lines(second.output, entry_point, "reused"), entry_point
        assert len(runs_of(client, experiment_name, entry_point)) == 1
    assert len(client.search_model_versions(f"name = '{name}'")) == 1

    # Someone removed the alias: register runs again and puts it back on the same version.
    client.delete_registered_model_alias(name, "production")
    again = run_project("main", {"model_name": name})
    assert again.returncode == 0, again.output
    assert step_lines(again.output, "train_basic", "reused") and step_lines(again.output, "register", "finished")
    assert client.get_model_version_by_alias(name, "production").version == "1"
    assert len(client.search_model_versions(f"name = '{name}'")) == 1

    # Cache off: everything runs again; the retrained model ties the champion, and a tie does not
    # replace it (no churn of versions), so version 2 is registered but not promoted.
    third = run_project("main", {"model_name": name, "use_cache": "false"})
    assert third.returncode == 0, third.output
    assert len(runs_of(client, experiment_name, "train_basic")) == 2
    assert client.get_model_version_by_alias(name, "production").version == "1"
    tie = client.get_model_version(name, "2")
    assert tie.tags["gate.decision"] == "rejected" and "a tie does not replace it" in tie.tags["gate.reason"]
    assert tie.aliases == [] and tie.current_stage == "None"
    assert "NOT promoted to 'production'" in third.output

    # Cache on again: the rejection stands (the alias is still where the gate left it), so the
    # register run that rejected version 2 is reused rather than judging the same model again.
    registers_before = len(runs_of(client, experiment_name, "register"))
    rerun = run_project("main", {"model_name": name})
    assert rerun.returncode == 0, rerun.output
    for entry_point in STEPS:
        assert step_lines(rerun.output, entry_point, "reused"), entry_point
    registers = runs_of(client, experiment_name, "register")
    assert len(registers) == registers_before
    assert registers[0].info.run_id in step_lines(rerun.output, "register", "reused")[0], "the run that rejected v2"
    assert client.get_model_version_by_alias(name, "production").version == "1"
    assert len(client.search_model_versions(f"name = '{name}'")) == 2

    # Changed hyperparameters: data steps reused, training reruns. Numbers given as strings still match.
    fourth = run_project(
        "main", {"model_name": name, "params": "n_estimators=50", "seed": "1.0", "test_size": "0.250", "force": "true"}
    )
    assert fourth.returncode == 0, fourth.output
    assert step_lines(fourth.output, "process", "reused") and step_lines(fourth.output, "train_basic", "finished")
    assert len(runs_of(client, experiment_name, "process")) == 2
    assert runs_of(client, experiment_name, "train_basic")[0].data.params["hp.n_estimators"] == "50"
    assert client.get_model_version_by_alias(name, "production").version == "3"
    assert json.loads(client.get_model_version(name, "3").tags["gate.details"])["forced"] is True


@pytest.mark.usefixtures("project_virtualenv")
def test_dolphinscheduler_line_runs_verbatim_with_the_default_env_manager(tmp_path, client, tracking_uri):
    data_file = tmp_path / "file.csv"
    data_file.write_bytes(SAMPLE.read_bytes())
    # The README's own example, with its placeholder path filled in; the session's server stands
    # in for its `export MLFLOW_TRACKING_URI=...` line.
    block = readme_block_containing("bash", "mlflow run . -P algorithm=xgboost")
    line = "\n".join(row for row in block.splitlines() if not row.startswith("export MLFLOW_TRACKING_URI="))
    assert "/abs/path/file.csv" in line and 'model_name="demo"' in line and '--experiment-name="demo-exp"' in line
    line = line.replace("/abs/path/file.csv", shlex.quote(str(data_file)))
    completed = subprocess.run(
        ["bash", "-c", line],
        cwd=PROJECT_DIR,
        env=subprocess_env(tracking_uri),
        capture_output=True,
        text=True,
        timeout=1500,
    )
    output = completed.stdout + completed.stderr
    print(output[-6000:])
    assert completed.returncode == 0, output[-6000:]

    [main_run] = runs_of(client, "demo-exp", "main")
    assert main_run.data.tags["mlflow.project.env"] == "virtualenv"
    [train] = runs_of(client, "demo-exp", "train_basic")
    assert train.data.tags["mlflow.project.env"] == "virtualenv", "children must inherit the env manager"
    assert train.data.params["hp.max_depth"] == "3" and train.data.params["hp.n_estimators"] == "50"
    assert train.data.params["best.learning_rate"] in {"0.05", "0.1"}
    assert [a.path for a in client.list_artifacts(train.info.run_id, "search")] == ["search/cv_results.csv"]
    version = client.get_model_version_by_alias("demo", "production")
    assert version.current_stage == "Production" and version.run_id == train.info.run_id


def test_folder_with_train_and_test_and_empty_strings_skip_registration(tmp_path, run_project, client, experiment_name):
    table = pd.read_csv(SAMPLE)
    folder = tmp_path / "iris_like"
    folder.mkdir()
    table.iloc[:400].to_csv(folder / "train.csv", index=False)
    table.iloc[400:].to_csv(folder / "test.csv", index=False)
    before = {m.name for m in client.search_registered_models()}

    result = run_project(
        "main", {"algorithm": "LR", "data_path": folder, "params": "", "search_params": "", "model_name": ""}
    )
    assert result.returncode == 0, result.output
    [process] = runs_of(client, experiment_name, "process")
    assert process.data.metrics["train_rows"] == 400 and process.data.metrics["test_rows"] == 169
    [train] = runs_of(client, experiment_name, "train_basic")
    assert train.data.params["algorithm"] == "lr" and "test_accuracy" in train.data.metrics
    assert runs_of(client, experiment_name, "register") == []
    assert {m.name for m in client.search_registered_models()} == before
    assert "Not registered: model_name is empty." in result.output


def test_undeclared_parameters_are_hyperparameter_overrides(run_project, client, experiment_name):
    result = run_project(
        "main", {"algorithm": "lightgbm", "params": "n_estimators=30", "learning_rate": 0.2, "colsample_bytree": 0.8}
    )
    assert result.returncode == 0, result.output
    [train] = runs_of(client, experiment_name, "train_basic")
    assert train.data.params["hp.learning_rate"] == "0.2"
    assert train.data.params["hp.colsample_bytree"] == "0.8"
    assert train.data.params["hp.n_estimators"] == "30"


def test_hostile_params_are_refused_and_execute_nothing(tmp_path, run_project, client, experiment_name):
    marker = tmp_path / "pwned"
    result = run_project("main", {"params": f"n_estimators=__import__('os').system('touch {marker}')"})
    assert result.returncode != 0
    assert any("is refused (Call is not allowed)" in line for line in result.error_lines())
    assert not marker.exists()
    assert [r.info.status for r in runs_of(client, experiment_name, "main")] == ["FAILED"]
    assert runs_of(client, experiment_name, "download") == [], "bad params must fail before any step runs"
