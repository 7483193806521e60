"""End to end: serving a registered model the way DolphinScheduler's MLflow Models task does, and the
Docker build context that `mlflow models generate-dockerfile` writes for it."""

from __future__ import annotations

import json
import subprocess
import uuid

import pandas as pd
import pytest
import requests
from conftest import BIN_DIR, PROJECT_DIR, free_port, subprocess_env, wait_until_healthy

pytestmark = pytest.mark.e2e
SAMPLE = PROJECT_DIR / "data" / "breast_cancer.csv"
# Building the model's virtualenv from its recorded requirements takes a minute or two the first time.
VIRTUALENV_SERVE_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def registered_model(tracking_uri):
    """One LightGBM model registered and promoted through `main`, shared by this module's tests."""
    name = f"served-{uuid.uuid4().hex[:8]}"
    experiment = f"serving-{uuid.uuid4().hex[:8]}"
    command = [
        str(BIN_DIR / "mlflow"),
        "run",
        str(PROJECT_DIR),
        "--env-manager",
        "local",
        "-P",
        f"model_name={name}",
        f"--experiment-name={experiment}",
    ]
    completed = subprocess.run(
        command, env=subprocess_env(tracking_uri), capture_output=True, text=True, timeout=900, cwd=PROJECT_DIR
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return name


def raw_rows(count: int = 3) -> pd.DataFrame:
    rows = pd.read_csv(SAMPLE).drop(columns=["label"]).head(count)
    rows.iloc[0, 1] = None
    return rows


def test_dolphinscheduler_serve_line_verbatim_with_the_default_env_manager(registered_model, tracking_uri, tmp_path):
    port = free_port()
    line = f"mlflow models serve -m models:/{registered_model}/Production --port {port} -h 0.0.0.0"
    # MLflow downloads the model to a temporary folder it never removes: keep it in the test's own.
    process = subprocess.Popen(
        ["bash", "-c", f"exec {line}"],
        env=subprocess_env(tracking_uri, TMPDIR=str(tmp_path)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, VIRTUALENV_SERVE_TIMEOUT_S, path="/ping")
        split = requests.post(
            f"{url}/invocations",
            json={"dataframe_split": json.loads(raw_rows().to_json(orient="split", index=False))},
            timeout=60,
        )
        records = requests.post(
            f"{url}/invocations",
            json={"dataframe_records": json.loads(raw_rows().to_json(orient="records"))},
            timeout=60,
        )
        missing_column = requests.post(
            f"{url}/invocations", json={"dataframe_records": [{"mean_radius": 1.0}]}, timeout=60
        )
        bad_json = requests.post(
            f"{url}/invocations", data="{not json", headers={"Content-Type": "application/json"}, timeout=60
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert split.status_code == 200 and records.status_code == 200
    assert split.json()["predictions"] == records.json()["predictions"]
    assert set(split.json()["predictions"]) <= {0, 1}
    assert missing_column.status_code == 400 and "missing inputs" in missing_column.json()["message"].lower()
    assert bad_json.status_code == 400 and "Invalid input" in bad_json.json()["message"]
    assert any(tmp_path.rglob("MLmodel")), "the downloaded model copy is in the test's folder, not the shared /tmp"


def test_generate_dockerfile_writes_a_context_that_serves_on_8080(registered_model, tracking_uri, tmp_path):
    context = tmp_path / "context"
    completed = subprocess.run(
        [
            str(BIN_DIR / "mlflow"),
            "models",
            "generate-dockerfile",
            "-m",
            f"models:/{registered_model}@production",
            "-d",
            str(context),
        ],
        env=subprocess_env(tracking_uri),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    dockerfile = (context / "Dockerfile").read_text()
    assert "FROM python:3.11.7" in dockerfile
    assert "C._serve(" in dockerfile, "the image's entry point is MLflow's scoring server (nginx on port 8080)"
    model_dir = context / "model_dir"
    assert "python_function" in (model_dir / "MLmodel").read_text()
    requirements = (model_dir / "requirements.txt").read_text()
    assert "mlflow==3.17.2" in requirements and "lightgbm==" in requirements and "skops==" in requirements
    shipped = sorted(path.name for path in (model_dir / "code" / "tabular_pipeline").rglob("*.py"))
    assert shipped == [
        "__init__.py", "autogluon.py", "autogluon_model_code.py", "estimators.py", "model.py", "model_code.py"
    ], "only the serving code travels"  # fmt: skip
    from mlflow.models.container import DEFAULT_NGINX_SERVER_PORT

    assert DEFAULT_NGINX_SERVER_PORT == 8080


def test_registered_model_lineage_points_back_to_its_training_run(registered_model, client):
    version = client.get_model_version_by_alias(registered_model, "production")
    run = client.get_run(version.run_id)
    assert run.data.tags["mlflow.project.entryPoint"] == "train_basic"
    assert version.tags["pipeline.model_uri"].startswith("models:/m-")
    assert version.tags["gate.decision"] == "promoted"
