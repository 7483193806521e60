"""End to end: the promotion gate and its lock through `mlflow run`, against the session's tracking
server. The fair rows and both scores the gate records are recomputed here from the runs' own split
artifacts and from the two versions served over HTTP; a register killed while it holds the lock
does not stop the next one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import requests
from conftest import PROJECT_DIR, project_command, subprocess_env
from fixtures import mixed_frame
from helpers import runs_of
from serving import served_model

from tabular_pipeline.evaluation.metrics import metrics_from_served_output
from tabular_pipeline.registry.lock_queue import LEASE_ENV, QUEUE_MODEL, queue_filter

pytestmark = pytest.mark.e2e


def clock(line: str) -> datetime:
    """The time a step's log line starts with (HH:MM:SS)."""
    return datetime.strptime(line[:8], "%H:%M:%S")


def served_answer(url: str, rows: pd.DataFrame) -> pd.DataFrame:
    """What a scoring server answers for `rows` (labels and class probabilities)."""
    split = json.loads(rows.to_json(orient="split", index=False, double_precision=15))
    body = {"dataframe_split": split, "params": {"return_probabilities": True}}
    answer = requests.post(f"{url}/invocations", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    return pd.DataFrame(answer.json()["predictions"])


def test_the_gate_scores_both_served_models_on_the_rows_neither_trained_on(
    run_project, client, experiment_name, tracking_uri, tmp_path
):
    """The champion is trained with seed=1, the candidate with seed=2, on one table: most of the
    candidate's test rows are in the champion's training split, and the gate leaves them out."""
    table = tmp_path / "customers.csv"
    mixed_frame(1600, seed=11).to_csv(table, index=False)
    name = f"fair-{uuid.uuid4().hex[:8]}"
    for seed in (1, 2):
        result = run_project("main", {"algorithm": "lr", "data_path": table, "model_name": name, "seed": seed})
        assert result.returncode == 0, result.output[-3000:]
    process = {r.data.params["seed"]: r for r in runs_of(client, experiment_name, "process")}
    trains = {r.data.params["seed"]: r for r in runs_of(client, experiment_name, "train_basic")}
    champion_train = pd.read_parquet(
        client.download_artifacts(process["1"].info.run_id, "processed/train.parquet", str(tmp_path / "c"))
    )
    candidate_test = pd.read_parquet(
        client.download_artifacts(trains["2"].info.run_id, "evaluation/test.parquet", str(tmp_path / "t"))
    )
    seen = candidate_test.merge(champion_train.drop_duplicates(), how="left", indicator=True)["_merge"] == "both"
    fair = candidate_test[~seen.to_numpy()].reset_index(drop=True)

    version = client.get_model_version(name, "2")
    details = json.loads(version.tags["gate.details"])
    assert details["champion_version"] == "1" and details["same_training_split"] is False
    assert (details["compared_rows"], details["left_out_rows"], details["test_rows"]) == (
        len(fair),
        int(seen.sum()),
        len(candidate_test),
    )
    assert 50 <= len(fair) <= len(candidate_test) / 2, "the split shares most rows, and leaves enough to judge"
    scores = {}
    for number in ("1", "2"):
        with served_model(f"models:/{name}/{number}", tracking_uri) as url:
            answer = served_answer(url, fair.drop(columns=["label"]))
        scores[number] = metrics_from_served_output(answer, fair["label"], "binary")["test_roc_auc"]
    assert details["champion_score"] == pytest.approx(scores["1"], abs=1e-6)
    assert details["candidate_score"] == pytest.approx(scores["2"], abs=1e-6)
    promoted = client.get_model_version_by_alias(name, "production").version == "2"
    assert promoted == (version.tags["gate.decision"] == "promoted")
    assert promoted == (scores["2"] - scores["1"] > 1e-6), version.tags["gate.reason"]
    assert f"on the {len(fair)} of {len(candidate_test)} test rows version 1 did not train on" in version.description

    names = {model.name for model in client.search_registered_models(max_results=1000)}
    assert name in names and QUEUE_MODEL in names
    assert not [n for n in names if n.endswith(".promotion-lock")], "one bookkeeping model, not one per name"


def test_a_register_killed_while_it_holds_the_lock_does_not_block_the_next(
    run_project, client, experiment_name, tracking_uri
):
    """SIGKILL of the whole `mlflow run` tree while it holds the lock leaves its run RUNNING and its
    ticket in the queue; the next register goes past it once its lease has run out, and promotes,
    with nobody ending runs or deleting tickets by hand. Then that version is copied to another
    registered name, as `register -P model_uri=models:/<name>/<version>` does."""
    lease = 30
    trained = run_project("train_basic", {"data_path": PROJECT_DIR / "data" / "breast_cancer.csv", "algorithm": "lr"})
    assert trained.returncode == 0, trained.output[-3000:]
    model_uri = runs_of(client, experiment_name, "train_basic")[0].data.tags["pipeline.output_uri"]
    name = f"killed-{uuid.uuid4().hex[:8]}"
    params = {"model_uri": model_uri, "model_name": name}
    holder = subprocess.Popen(
        project_command("register", params, experiment_name),
        cwd=PROJECT_DIR,
        env=subprocess_env(tracking_uri, **{LEASE_ENV: str(lease)}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (tickets := client.search_model_versions(queue_filter(name))):
            assert holder.poll() is None, "the register finished before it could be killed"
            assert time.monotonic() < deadline, "its ticket never appeared"
            time.sleep(0.1)
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
    [ticket] = tickets
    assert client.get_run(ticket.run_id).info.status == "RUNNING", "the dead holder's run was not ended"
    result = run_project("register", {**params, "force": "true"}, env={LEASE_ENV: str(lease)})
    assert result.returncode == 0, result.output[-3000:]
    assert client.get_model_version_by_alias(name, "production").tags["gate.decision"] == "promoted"
    lines = result.output.splitlines()
    [waiting] = [line for line in lines if f"waiting for the promotion lock of '{name}'" in line]
    [passed] = [line for line in lines if f"went past ticket {ticket.version} of run {ticket.run_id}" in line]
    # Its own log's clock: it waited one lease (watching the heartbeat stand still), polling every 5 s at most.
    waited = (clock(passed) - clock(waiting)).total_seconds() % 86_400  # a wait may cross midnight
    assert lease <= waited <= lease + 15, (waiting, passed)
    assert client.get_run(ticket.run_id).info.status == "RUNNING", "still nobody ended it"
    assert client.search_model_versions(queue_filter(name)) == [], "its ticket was revoked and removed"

    # A registered version copied to another name (by version, then by alias): the training run
    # behind it is found and gated as usual, and the copy records where it came from.
    copy_name = f"copy-{uuid.uuid4().hex[:6]}"
    for uri in (f"models:/{name}/1", f"models:/{name}@production"):
        copied = run_project("register", {"model_uri": uri, "model_name": copy_name})
        assert copied.returncode == 0, copied.output[-3000:]
    [copy] = client.search_model_versions(f"name = '{copy_name}'")
    train_run_id = runs_of(client, experiment_name, "train_basic")[0].info.run_id
    assert copy.tags["pipeline.copied_from"] == f"models:/{name}/1" and copy.run_id == train_run_id
    assert copy.tags["gate.decision"] == "promoted"
    assert json.loads(copy.tags["lineage"])["training_run_id"] == train_run_id
    wrong = run_project("predict", {"model_uri": f"models:/{name[:-1]}/1", "data_path": Path("/dev/null")})
    assert wrong.returncode != 0 and f"(did you mean '{name}'" in wrong.error_lines()[0], wrong.output[-2000:]
