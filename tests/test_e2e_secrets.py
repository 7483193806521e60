"""End to end: secrets in source URLs. A password in the URL is refused before anything runs; a
presigned URL's signature is used for the download and recorded nowhere the project writes:
not in tags, dataset sources, child-run parameters, version tags, nor the project's own output.

MLflow itself records every `-P` value of the command line as a parameter of that run and prints
the command it runs; that one parameter and that one line are MLflow's, and are left out of the scan.
"""

from __future__ import annotations

import uuid

import pytest
from conftest import PROJECT_DIR
from helpers import runs_of
from local_http import serve_routes

pytestmark = pytest.mark.e2e
SAMPLE = PROJECT_DIR / "data" / "breast_cancer.csv"


def recorded_text(client, experiment_name: str, model_name: str | None) -> list[tuple[str, str]]:
    """(where, value) of everything the runs and versions of a test record, but the top-level
    run's own command-line parameters (MLflow records those before any project code starts)."""
    found = []
    for run in runs_of(client, experiment_name):
        entry_point = run.data.tags.get("mlflow.project.entryPoint")
        top_level = "mlflow.parentRunId" not in run.data.tags
        for key, value in run.data.params.items():
            if not top_level:
                found.append((f"{entry_point} param {key}", value))
        found += [(f"{entry_point} tag {key}", value) for key, value in run.data.tags.items()]
        for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
            found.append((f"{entry_point} dataset source", dataset_input.dataset.source))
    if model_name:
        for version in client.search_model_versions(f"name = '{model_name}'"):
            found += [(f"version tag {key}", value) for key, value in version.tags.items()]
            found.append(("version description", version.description or ""))
    return found


def project_lines(output: str) -> list[str]:
    """The output without the line where MLflow prints the top-level command it runs."""
    return [line for line in output.splitlines() if not ("=== Running command" in line and "-m main" in line)]


def test_a_password_in_the_url_is_refused_and_recorded_nowhere(run_project, client, experiment_name):
    password = f"pw-{uuid.uuid4().hex[:12]}"
    result = run_project("main", {"data_path": f"http://alice:{password}@127.0.0.1:9/table.csv", "model_name": "never"})
    assert result.returncode != 0
    [line] = result.error_lines()
    assert "carries credentials in the URL" in line and "~/.netrc" in line, line
    assert "Traceback" not in result.output
    assert not [line for line in project_lines(result.output) if password in line]
    assert not [where for where, value in recorded_text(client, experiment_name, None) if password in value]
    [main_run] = runs_of(client, experiment_name, "main")
    assert main_run.info.status == "FAILED" and runs_of(client, experiment_name, "download") == [], (
        "refused before any step"
    )


def test_a_presigned_url_downloads_and_its_signature_is_recorded_nowhere(run_project, client, experiment_name):
    signature = f"sig{uuid.uuid4().hex}"
    name = f"signed-{uuid.uuid4().hex[:6]}"
    query = f"X-Amz-Signature={signature}&X-Amz-Expires=300"
    with serve_routes({f"/table.csv?{query}": SAMPLE.read_bytes()}) as base:
        result = run_project("main", {"data_path": f"{base}/table.csv?{query}", "algorithm": "lr", "model_name": name})
    assert result.returncode == 0, result.output[-3000:]
    assert base.requests == [f"/table.csv?{query}"], "the download used the signed URL"
    leaks = [where for where, value in recorded_text(client, experiment_name, name) if signature in value]
    assert not leaks, leaks
    assert not [line for line in project_lines(result.output) if signature in line]
    [download] = runs_of(client, experiment_name, "download")
    assert download.data.params["source"] == f"{base}/table.csv"
    [raw] = download.inputs.dataset_inputs
    assert raw.dataset.source_type == "http" and f"{base}/table.csv" in raw.dataset.source
    assert client.get_model_version_by_alias(name, "production").version == "1"


def test_a_redirect_to_the_cloud_metadata_address_is_refused(run_project, client, experiment_name):
    # The IPv4-mapped IPv6 form of the metadata address: it must not slip past the check.
    redirects = {"/table.csv": "http://[::ffff:169.254.169.254]/latest/meta-data/iam/security-credentials/"}
    with serve_routes({}, redirects=redirects) as base:
        result = run_project("download", {"source": f"{base}/table.csv", "timeout_s": 5})
    assert result.returncode != 0
    [line] = result.error_lines()
    assert (
        line.startswith("error: download: ") and "refused: its host is a cloud metadata or link-local address" in line
    ), line
    [run] = runs_of(client, experiment_name, "download")
    assert run.info.status == "FAILED"
