"""End to end: DolphinScheduler's preset sub-projects, fetched over git from a loopback `git daemon`
exactly as a worker fetches `<repo>#Project-BasicAlgorithm --version <commit>`."""

from __future__ import annotations

import shlex
import subprocess
import time
import uuid

import pytest
from conftest import PROJECT_DIR, free_port, subprocess_env
from helpers import runs_of

pytestmark = pytest.mark.e2e
SAMPLE = PROJECT_DIR / "data" / "breast_cancer.csv"


@pytest.fixture(scope="module")
def git_served_repo(tmp_path_factory):
    """A bare clone of this repository's HEAD behind `git daemon` on 127.0.0.1; yields (url, commit)."""
    root = tmp_path_factory.mktemp("git")
    subprocess.run(["git", "clone", "--quiet", "--bare", str(PROJECT_DIR), str(root / "project.git")], check=True)
    commit = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--listen=127.0.0.1",
            f"--port={port}",
            f"--base-path={root}",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"git://127.0.0.1:{port}/project.git"
    deadline = time.monotonic() + 30
    while subprocess.run(["git", "ls-remote", url], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "git daemon did not come up"
        time.sleep(0.3)
    yield url, commit
    daemon.terminate()
    daemon.wait(timeout=10)


@pytest.mark.usefixtures("project_virtualenv")
def test_basic_algorithm_preset_over_git(git_served_repo, tmp_path, client, tracking_uri):
    url, commit = git_served_repo
    param_file = tmp_path / "params.txt"
    param_file.write_text("# preset file\nn_estimators=60\nnum_leaves=15\n")
    experiment = f"preset-{uuid.uuid4().hex[:6]}"
    name = f"preset-{uuid.uuid4().hex[:6]}"
    # The line DolphinScheduler generates (the default env manager, virtualenv, included).
    line = (
        f"mlflow run {url}#Project-BasicAlgorithm -P algorithm=LightGBM -P data_path={shlex.quote(str(SAMPLE))} "
        f'-P params="learning_rate=0.1" -P search_params="" -P model_name="{name}" -P '
        f"param_file={shlex.quote(str(param_file))} "
        f'--experiment-name="{experiment}" --version={commit}'
    )
    completed = subprocess.run(
        ["bash", "-c", line],
        env=subprocess_env(tracking_uri),
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=tmp_path,
    )
    output = completed.stdout + completed.stderr
    print(output[-5000:])
    assert completed.returncode == 0, output[-5000:]

    [main_run] = runs_of(client, experiment, "main")
    assert main_run.data.tags["mlflow.source.git.commit"] == commit
    assert main_run.data.tags["mlflow.source.git.repoURL"] == url
    [train] = runs_of(client, experiment, "train_basic")
    assert train.data.tags["mlflow.source.git.commit"] == commit
    assert train.data.params["hp.n_estimators"] == "60" and train.data.params["hp.num_leaves"] == "15"
    assert train.data.params["hp.learning_rate"] == "0.1"
    assert client.get_model_version_by_alias(name, "production").run_id == train.info.run_id


@pytest.mark.usefixtures("project_virtualenv")
def test_automl_preset_over_git_with_flaml(git_served_repo, tmp_path, client, tracking_uri):
    url, commit = git_served_repo
    experiment = f"preset-automl-{uuid.uuid4().hex[:6]}"
    line = (
        f"mlflow run {url}#Project-AutoML -P tool=flaml -P data_path={shlex.quote(str(SAMPLE))} "
        f'-P params="time_budget=10;estimator_list=[\'lgbm\']" -P model_name="" --experiment-name="{experiment}" '
        f"--version={commit}"
    )
    completed = subprocess.run(
        ["bash", "-c", line],
        env=subprocess_env(tracking_uri),
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=tmp_path,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    [main_run] = runs_of(client, experiment, "main")
    assert (
        main_run.data.tags["mlflow.source.git.commit"] == commit
        and main_run.data.tags["mlflow.source.git.repoURL"] == url
    )
    [train] = runs_of(client, experiment, "train_automl")
    assert train.data.params["automl.best_estimator"] == "lgbm" and train.data.params["automl.time_budget"] == "10.0"
