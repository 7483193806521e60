"""End to end: a model version records what rebuilt it, and `reproduce` reruns its training from
those records and reports whether the metrics match."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from conftest import PROJECT_DIR
from helpers import runs_of

pytestmark = pytest.mark.e2e
SAMPLE = PROJECT_DIR / "data" / "breast_cancer.csv"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def project_repository(root: Path) -> Path:
    """A git repository holding this project's current files (committed or not), one commit deep."""
    repo = root / "project"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=PROJECT_DIR, capture_output=True, check=True
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (PROJECT_DIR / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_DIR / name, repo / name)
    git(repo, "init", "--quiet")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "--quiet", "-m", "trained here")
    return repo


def test_version_lineage_and_reproduce_at_the_recorded_commit(run_project, client, experiment_name, tmp_path):
    """A model trained at one commit is reproduced from a checkout that has moved on: the rerun
    uses the recorded commit, in a scratch clone, and the caller's checkout is left as it was."""
    # A registered name that starts like a logged-model id (`m-...`) must still read as a name.
    name = f"m-lineage-{uuid.uuid4().hex[:8]}"
    repo = project_repository(tmp_path)
    trained_at = git(repo, "rev-parse", "HEAD")
    result = run_project("train_basic", {"algorithm": "LogisticRegression", "data_path": SAMPLE}, uri=str(repo))
    assert result.returncode == 0, result.output[-3000:]
    [train] = runs_of(client, experiment_name, "train_basic")
    registered = run_project(
        "register", {"model_uri": train.data.tags["pipeline.output_uri"], "model_name": name}, uri=str(repo)
    )
    assert registered.returncode == 0, registered.output[-3000:]
    version = client.get_model_version(name, "1")
    lineage = json.loads(version.tags["lineage"])
    assert lineage["training_run_id"] == train.info.run_id and lineage["entry_point"] == "train_basic"
    assert lineage["code_version"] == train.data.tags["pipeline.code_version"] == trained_at
    assert lineage["git_dirty"] == "false" and lineage["git_commit"] == trained_at
    assert lineage["data_uri"] == train.data.params["data_path"] == str(SAMPLE) == lineage["data_source"]
    digests = {d.dataset.name: d.dataset.digest for d in train.inputs.dataset_inputs}
    assert lineage["train_digest"] == digests["train"] and lineage["test_digest"] == digests["test"]
    assert len(version.tags) <= 5, f"a version carries few tags: {sorted(version.tags)}"
    assert "test_roc_auc" in version.description and "production" in version.description
    assert train.data.params["hp.C"] and train.data.params["seed"] == "1", "effective parameters are on the run"

    # The caller's checkout moves on: a new commit, an uncommitted edit and an untracked file.
    (repo / "NOTES.md").write_text("a later commit\n")
    git(repo, "add", "NOTES.md")
    git(repo, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "--quiet", "-m", "moved on")
    moved_to = git(repo, "rev-parse", "HEAD")
    with (repo / "README.md").open("a") as handle:
        handle.write("\nan uncommitted edit\n")
    (repo / "scratch.txt").write_text("untracked\n")
    status_before = git(repo, "status", "--porcelain")

    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    reproduced = run_project(
        "reproduce", {"model_uri": f"models:/{name}@production"}, uri=str(repo), env={"TMPDIR": str(temp_dir)}
    )
    assert reproduced.returncode == 0, reproduced.output[-3000:]
    # The scratch clone and the rerun's MLflow folder are gone; what is left is the one empty folder
    # the `mlflow run` CLI itself makes for every run (MLflow's, never removed).
    left = list(temp_dir.iterdir())
    assert len(left) == 1 and left[0].is_dir() and not any(left[0].iterdir()), sorted(path.name for path in left)
    assert git(repo, "rev-parse", "HEAD") == moved_to, "the caller's HEAD did not move"
    assert git(repo, "status", "--porcelain") == status_before, "the caller's files are as they were"
    assert (repo / "scratch.txt").read_text() == "untracked\n" and (repo / "NOTES.md").exists()
    [reproduce] = runs_of(client, experiment_name, "reproduce")
    assert reproduce.info.status == "FINISHED" and reproduce.data.tags["reproduce.match"] == "true"
    assert reproduce.data.tags["reproduce.exact_code"] == "true"
    rerun = client.get_run(reproduce.data.tags["reproduce.rerun_run_id"])
    assert rerun.data.tags["mlflow.source.git.commit"] == trained_at, "the rerun ran the recorded commit"
    assert rerun.data.params["data_path"] == train.data.params["data_path"]
    assert {k: v for k, v in rerun.data.metrics.items() if k.startswith("test_")} == {
        k: v for k, v in train.data.metrics.items() if k.startswith("test_")
    }
    assert "test_roc_auc: recorded" in reproduced.output and "-> same" in reproduced.output


def test_reproduce_refuses_a_missing_model_with_one_clear_line(run_project, client, experiment_name):
    result = run_project("reproduce", {"model_uri": f"models:/missing-{uuid.uuid4().hex[:6]}/1"})
    assert result.returncode != 0
    [line] = result.error_lines()
    assert "does not exist" in line and "expected a registered version" in line and "Traceback" not in result.output
    [run] = runs_of(client, experiment_name, "reproduce")
    assert run.info.status == "FAILED"


def test_runs_logging_the_same_new_dataset_at_once_all_get_it(tracking_uri, client, experiment_name):
    """The tracking store looks a dataset up and then inserts it, so runs logging the same new
    dataset at the same moment collide on its key (seen with four pipelines on PostgreSQL);
    `log_dataset` tries again and links the row the other run wrote. Several rounds, because a
    race does not show every time."""
    import mlflow
    import numpy as np
    import pandas as pd

    from tabular_pipeline.registry.datasets import log_dataset, pandas_dataset

    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = client.create_experiment(experiment_name)
    failures: list[str] = []
    runs_per_round, rounds = 16, 6

    def log_in_own_run(frame: pd.DataFrame, start: threading.Barrier) -> None:
        with mlflow.start_run(experiment_id=experiment_id):
            dataset = pandas_dataset(frame, name="shared")
            start.wait()
            try:
                log_dataset(dataset, context="raw")
            except Exception as error:  # noqa: BLE001 - collected and asserted below
                failures.append(str(error).splitlines()[0])

    digests = set()
    for round_number in range(rounds):
        frame = pd.DataFrame({"value": np.arange(10) + 100 * round_number})
        digests.add(pandas_dataset(frame, name="shared").digest)
        start = threading.Barrier(runs_per_round)
        threads = [threading.Thread(target=log_in_own_run, args=(frame, start)) for _ in range(runs_per_round)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert not failures, failures[:3]
    runs = client.search_runs([experiment_id], max_results=1000)
    assert len(runs) == rounds * runs_per_round
    logged = [[(i.dataset.name, i.dataset.digest) for i in run.inputs.dataset_inputs] for run in runs]
    assert all(len(inputs) == 1 and inputs[0][0] == "shared" for inputs in logged)
    assert {inputs[0][1] for inputs in logged} == digests
