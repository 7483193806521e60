"""End to end: each step as its own entry point, handing over run and model URIs."""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile

import mlflow
import pandas as pd
import pytest
import requests
from conftest import BIN_DIR, PROJECT_DIR
from helpers import runs_of
from local_http import serve_routes
from mlflow.exceptions import MlflowException
from serving import served_model

pytestmark = pytest.mark.e2e
SAMPLE = PROJECT_DIR / "data" / "breast_cancer.csv"


def only_run(client, experiment_name, entry_point):
    [run] = runs_of(client, experiment_name, entry_point)
    return run


def test_steps_one_by_one_hand_over_uris(run_project, client, experiment_name, tracking_uri, monkeypatch):
    assert run_project("download").returncode == 0
    download = only_run(client, experiment_name, "download")
    raw_uri = f"runs:/{download.info.run_id}/raw"
    assert download.data.tags["pipeline.output_uri"] == raw_uri

    # A notebook calls the same entry point through the Python API.
    monkeypatch.setenv("PATH", f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}")
    mlflow.set_tracking_uri(tracking_uri)
    submitted = mlflow.projects.run(
        str(PROJECT_DIR),
        entry_point="process",
        parameters={"data_path": raw_uri, "test_size": 0.3},
        experiment_name=experiment_name,
        env_manager="local",
    )
    assert submitted.get_status() == "FINISHED"
    process = client.get_run(submitted.run_id)
    assert process.data.metrics["test_rows"] == 171

    result = run_project(
        "train_basic",
        {"data_path": process.data.tags["pipeline.output_uri"], "algorithm": "svm", "search_params": "C=[0.5, 1.0]"},
    )
    assert result.returncode == 0, result.output
    train = only_run(client, experiment_name, "train_basic")
    assert train.data.params["best.C"] in {"0.5", "1.0"}
    assert train.data.metrics["test_roc_auc"] > 0.9
    model_uri = train.data.tags["pipeline.output_uri"]

    name = f"steps-{uuid.uuid4().hex[:8]}"
    result = run_project("register", {"model_uri": model_uri, "model_name": name, "alias": "staging"})
    assert result.returncode == 0, result.output
    version = client.get_model_version_by_alias(name, "staging")
    assert version.current_stage == "Staging" and version.run_id == train.info.run_id
    frame = pd.read_csv(SAMPLE).drop(columns=["label"]).astype("float64").head(3)
    assert len(mlflow.pyfunc.load_model(f"models:/{name}/Staging").predict(frame)) == 3

    # The registered model serves raw rows over HTTP, a missing value included.
    frame.iloc[0, 0] = None
    with served_model(f"models:/{name}/Staging", tracking_uri) as url:
        split = requests.post(
            f"{url}/invocations",
            json={"dataframe_split": json.loads(frame.to_json(orient="split", index=False))},
            timeout=60,
        )
        records = requests.post(
            f"{url}/invocations", json={"dataframe_records": json.loads(frame.to_json(orient="records"))}, timeout=60
        )
        garbage = requests.post(
            f"{url}/invocations", data="not json", headers={"Content-Type": "application/json"}, timeout=60
        )
    assert split.status_code == 200 and records.status_code == 200
    assert split.json()["predictions"] == records.json()["predictions"]
    assert set(split.json()["predictions"]) <= {0, 1} and len(split.json()["predictions"]) == 3
    assert garbage.status_code == 400 and "Invalid input" in garbage.json()["message"]


def test_train_basic_accepts_a_raw_csv(run_project, client, experiment_name):
    result = run_project("train_basic", {"data_path": SAMPLE, "algorithm": "xgboost", "params": "n_estimators=20"})
    assert result.returncode == 0, result.output
    train = only_run(client, experiment_name, "train_basic")
    assert train.data.tags["pipeline.task"] == "binary" and train.data.metrics["test_roc_auc"] > 0.9


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, body in entries.items():
            bundle.writestr(name, body)
    return buffer.getvalue()


def test_download_reads_http_archives_and_file_uris(tmp_path, run_project, client, experiment_name):
    from tabular_pipeline.orchestration.fingerprints import TAG_SOURCE_DIGEST
    from tabular_pipeline.orchestration.workflow import source_digest

    table = SAMPLE.read_bytes()
    split = zip_bytes({"train.csv": table, "test.csv": table})
    with serve_routes({"/table.csv": table, "/split.zip": split}) as base:
        assert run_project("download", {"source": f"{base}/table.csv"}).returncode == 0
        assert run_project("download", {"source": f"{base}/split.zip"}).returncode == 0
    assert run_project("download", {"source": SAMPLE.as_uri()}).returncode == 0  # a 404: test_e2e_hostile
    (tmp_path / "local.zip").write_bytes(zip_bytes({"local.csv": table}))
    (tmp_path / "folder").mkdir()
    for name in ("train.csv", "test.csv"):
        (tmp_path / "folder" / name).write_bytes(table)
    for local in ("local.zip", "folder"):
        assert run_project("download", {"source": str(tmp_path / local)}).returncode == 0
    runs = [run for run in runs_of(client, experiment_name, "download") if run.info.status == "FINISHED"]
    artifacts = sorted(tuple(a.path for a in client.list_artifacts(run.info.run_id, "raw")) for run in runs)
    assert artifacts == [
        ("raw/breast_cancer.parquet",),
        ("raw/local.parquet",),
        ("raw/table.parquet",),
        ("raw/test.parquet", "raw/train.parquet"),
        ("raw/test.parquet", "raw/train.parquet"),
    ]
    # A local source's digest as download read it is main's for the same source (main reuses the
    # run only when they are equal); an HTTP source has none.
    read = {run.data.params["source"]: run.data.tags.get(TAG_SOURCE_DIGEST) for run in runs}
    for source, digest in read.items():
        expected = source_digest(source, PROJECT_DIR) if source.startswith(("/", "file:")) else None
        assert digest == expected, source
    assert sum(digest is not None for digest in read.values()) == 3


def test_zip_slip_archive_is_refused(tmp_path, run_project, client, experiment_name):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_bytes({"train.csv": b"a,label\n1,0\n", "../../escaped.csv": b"x"}))
    result = run_project("download", {"source": archive})
    assert result.returncode != 0
    assert any("outside the extraction folder" in line for line in result.error_lines())
    assert only_run(client, experiment_name, "download").info.status == "FAILED"
    assert not list(tmp_path.parent.rglob("escaped.csv"))


def test_train_automl_refuses_a_budget_autosklearn_cannot_use_before_searching(run_project, client, experiment_name):
    result = run_project("train_automl", {"tool": "autosklearn", "data_path": SAMPLE, "time_budget": 10})
    assert result.returncode != 0
    [line] = result.error_lines()
    assert (
        "the auto-sklearn budget is 10 s; expected between 30 and 86400 seconds" in line
        and "Traceback" not in result.output
    )
    assert only_run(client, experiment_name, "train_automl").info.status == "FAILED"
    assert not runs_of(client, experiment_name, "search"), "no worker was started"


def test_register_refuses_a_missing_model_and_bad_names(run_project, client, experiment_name):
    name = f"missing-{uuid.uuid4().hex[:8]}"
    result = run_project("register", {"model_uri": "models:/m-0000000000000000000000000000dead", "model_name": name})
    assert result.returncode != 0
    assert any(
        line.startswith("error: register: model models:/m-") and "does not exist" in line
        for line in result.error_lines()
    )
    with pytest.raises(MlflowException):
        client.get_registered_model(name)
    bad = run_project("register", {"model_uri": "models:/m-x", "model_name": "a/b"})
    assert bad.returncode != 0 and any("contains '/'" in line for line in bad.error_lines())
    assert {r.info.status for r in runs_of(client, experiment_name, "register")} == {"FAILED"}
