"""End to end: the team tracking stack (PostgreSQL + MLflow basic-auth) started by
`deploy/tracking/start-native.sh`, used with credentials from the environment, with its artifacts
in an S3 bucket (moto's S3 server on loopback) that only the server holds credentials for."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
import requests
from conftest import BIN_DIR, PROJECT_DIR, free_port, stop_process, subprocess_env, wait_until_healthy
from helpers import runs_of
from serving import served_model

pytestmark = pytest.mark.e2e
SCRIPT = PROJECT_DIR / "deploy" / "tracking" / "start-native.sh"
SAMPLE = PROJECT_DIR / "data" / "breast_cancer.csv"
ADMIN = "admin"
PASSWORD = f"pw-{uuid.uuid4().hex}"
BUCKET, PREFIX = "team-artifacts", "mlflow/team"
S3_SECRET = f"s3-{uuid.uuid4().hex}"
# Only the server's environment holds these; the clients (steps, serving, predict) get none.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "team-server",
    "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class TeamStack:
    url: str
    state: Path  # STATE_DIR: the server host's own files
    output: str  # what start-native.sh printed


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_SECRET,
        region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
    )


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """moto's S3 server on a free loopback port, holding an empty bucket; its request log goes to
    a file, not the test output."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    command = [str(BIN_DIR / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(""))
    try:
        wait_until_healthy(endpoint, process, 60, path="/moto-api/")
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        stop_process(process)
        log.close()


@pytest.fixture(scope="module")
def team_stack(tmp_path_factory, s3_endpoint) -> Iterator[TeamStack]:
    """The stack on free loopback ports, artifacts in s3://BUCKET/PREFIX."""
    state = tmp_path_factory.mktemp("team-server")
    port = free_port()
    env = {k: v for k, v in subprocess_env("").items() if not k.startswith("AWS_")}
    env |= {"MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD, "MLFLOW_BIN": str(BIN_DIR / "mlflow"), **S3_CREDENTIALS}
    env |= {"MLFLOW_ARTIFACTS_DESTINATION": f"s3://{BUCKET}/{PREFIX}", "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", str(state), str(port), str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield TeamStack(f"http://127.0.0.1:{port}", state, started.stdout + started.stderr)
    finally:
        # `delete`, not `stop`: as root, PostgreSQL's files live outside `state` and would outlive it.
        deleted = subprocess.run(["bash", str(SCRIPT), "delete", str(state)], env=env, timeout=120)
    # After a start that worked only, so a failed start keeps its own message.
    assert deleted.returncode == 0, "the stack's PostgreSQL data was not deleted"


@pytest.fixture(scope="module")
def team_server(team_stack) -> str:
    return team_stack.url


def bucket_files(endpoint: str, artifact_uri: str) -> set[str]:
    """The files the bucket holds under a proxied `mlflow-artifacts:` URI, relative to it."""
    assert artifact_uri.startswith("mlflow-artifacts:"), f"{artifact_uri} does not go through the server"
    prefix = f"{PREFIX}/{urlparse(artifact_uri).path.strip('/')}/"
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"].removeprefix(prefix) for page in pages for item in page.get("Contents", [])}


@pytest.fixture()
def team_client(team_server, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    return MlflowClient(tracking_uri=team_server)


def test_script_refuses_to_start_without_an_admin_password(tmp_path):
    command = ["bash", str(SCRIPT), "start", str(tmp_path), "5999", "5998"]
    completed = subprocess.run(command, env=subprocess_env(""), capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2 and "MLFLOW_AUTH_ADMIN_PASSWORD must be set" in completed.stderr


def start_with(state: Path, **settings: str) -> subprocess.CompletedProcess:
    """`start-native.sh start` with the admin password and `settings` in its environment."""
    env = {**subprocess_env(""), "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD, **settings}
    command = ["bash", str(SCRIPT), "start", str(state), "5999", "5998"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("destination", "shown"),
    [(d, d) for d in ("/srv/artifacts", "s3:/bucket", "s3://Bucket/x", "s3://bucket//x", "gs://b/x")]
    + [("s3://AKIA:SECRET@bucket/x", "s3://***@bucket/x")],  # credentials pasted in are not echoed
)
def test_script_refuses_a_malformed_artifact_destination_in_one_line(tmp_path, destination, shown):
    completed = start_with(tmp_path, MLFLOW_ARTIFACTS_DESTINATION=destination)
    assert completed.returncode == 2 and completed.stdout == ""
    assert completed.stderr.splitlines() == [
        f"MLFLOW_ARTIFACTS_DESTINATION is '{shown}'; expected s3://bucket[/prefix] (or unset, for STATE_DIR/artifacts)"
    ]
    assert not any(tmp_path.iterdir()), "refused before creating anything"


def test_script_refuses_a_credential_cache_time_that_is_not_whole_seconds(tmp_path):
    completed = start_with(tmp_path, MLFLOW_AUTH_CACHE_TTL_SECONDS="1m")
    assert (
        completed.returncode == 2
        and "MLFLOW_AUTH_CACHE_TTL_SECONDS is '1m'; expected a whole number of seconds" in completed.stderr
    )


def postgres_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_stop_keeps_the_database_and_delete_stops_it_and_removes_it_wherever_it_lives(tmp_path_factory):
    state = tmp_path_factory.mktemp("postgres-lifecycle")
    env = subprocess_env("", POSTGRES_PASSWORD=f"pg-{uuid.uuid4().hex}")
    port = free_port()
    started = postgres_script(env, "postgres", str(state), str(port))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        printed = re.search(r"\(data in (/.+)\)$", started.stdout.strip())
        assert printed, f"start names where the data lives: {started.stdout!r}"
        pg_root = Path(printed.group(1))
        recorded = "pg" if pg_root == state / "pg" else str(pg_root)
        assert (state / "pg.location").read_text().strip() == recorded, "start records where it put them"
        assert (pg_root / "data" / "PG_VERSION").is_file()
        if os.geteuid() == 0:
            assert pg_root.stat().st_uid == 0, "PostgreSQL's user must not own the folder it could swap"
        if pg_root != state / "pg":  # root: the data sits outside, and a copy of the state folder names it too
            copy = tmp_path_factory.mktemp("postgres-lifecycle-copy") / "state"
            shutil.copytree(state, copy)
            refused = postgres_script(env, "delete", str(copy))
            assert refused.returncode == 2 and f"belongs to {state}" in refused.stderr, refused.stderr
            assert port_open(port) and (pg_root / "data" / "PG_VERSION").is_file(), "the original is untouched"
        stopped = postgres_script(env, "stop", str(state))
        assert stopped.returncode == 0 and stopped.stdout.strip().endswith(f"is kept in {pg_root}"), stopped.stdout
        assert not port_open(port)
        assert (pg_root / "data" / "PG_VERSION").is_file(), "stop keeps the database for the next start"
        again = postgres_script(env, "postgres", str(state), str(port))
        assert again.returncode == 0 and port_open(port), again.stderr
    finally:
        deleted = postgres_script(env, "delete", str(state))  # while it runs
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f"Stopped; PostgreSQL's data for {state} is deleted ({pg_root})"
    assert not port_open(port), "delete stops it first"
    assert not pg_root.exists(), f"{pg_root} outlived delete"
    assert not (state / "pg.location").exists()
    again = postgres_script(env, "delete", str(state))
    assert again.returncode == 1 and "found no PostgreSQL data" in again.stderr and "nothing deleted" in again.stderr


def test_delete_removes_nothing_that_is_not_postgresql_data(tmp_path):
    env = subprocess_env("")
    state = tmp_path / "home"
    (state / "pg").mkdir(parents=True)
    (state / "pg" / "notes.txt").write_text("mine")
    (state / "pg.location").write_text("pg\n")  # inside STATE_DIR, whoever runs it
    deleted = postgres_script(env, "delete", str(state))
    assert deleted.returncode == 1 and deleted.stdout == "", deleted.stdout
    assert "found no PostgreSQL data" in deleted.stderr and "nothing deleted" in deleted.stderr
    assert (state / "pg" / "notes.txt").read_text() == "mine"
    (state / "pg.location").write_text(f"{state / 'pg'}\n")  # as an earlier version wrote it
    assert postgres_script(env, "delete", str(state)).returncode == 1
    (state / "pg.location").write_text(f"{tmp_path}\n")  # a record naming any other folder
    refused = postgres_script(env, "delete", str(state))
    assert refused.returncode == 2 and "expected pg or /var/tmp/mlflow-pg-" in refused.stderr
    assert (state / "pg" / "notes.txt").read_text() == "mine"
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "pg").symlink_to(state / "pg")
    (linked / "pg.location").write_text("pg\n")
    refused = postgres_script(env, "delete", str(linked))
    assert refused.returncode == 1 and "is a link; nothing deleted" in refused.stderr
    assert (state / "pg" / "notes.txt").read_text() == "mine"
    quoted = tmp_path / "q'x"
    quoted.mkdir()
    done = subprocess.run(
        ["bash", str(SCRIPT), "postgres", "state", "55999"], cwd=quoted, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "holds a quote" in done.stderr and not (quoted / "state").exists()
    missing = postgres_script(env, "delete", str(tmp_path / "never"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "never").exists(), "stop and delete create no folder"


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL's own user needs root")
def test_a_folder_postgresql_made_first_cannot_make_root_write_through_its_links(tmp_path):
    """PostgreSQL's user may create the predictable folder before root's first start (or own it
    from an older version's start): a link it put inside is never written through."""
    import hashlib

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    state = private / "state"  # PostgreSQL's user cannot reach it: the data would go to /var/tmp
    state.mkdir()
    victim = tmp_path / "root-only.txt"
    victim.write_text("precious")
    victim.chmod(0o600)
    planted = Path(f"/var/tmp/mlflow-pg-{hashlib.sha1(str(state).encode()).hexdigest()[:12]}")
    plant = f"mkdir {planted} && ln -s {victim} {planted}/owner"
    subprocess.run(["su", "postgres", "-s", "/bin/bash", "-c", plant], check=True)
    env = subprocess_env("", POSTGRES_PASSWORD=f"pg-{uuid.uuid4().hex}")
    try:
        started = postgres_script(env, "postgres", str(state), str(free_port()))
        assert started.returncode == 0, started.stderr
        assert victim.read_text() == "precious", "root wrote through the planted link"
        assert not (planted / "owner").is_symlink() and planted.stat().st_uid == 0
    finally:
        deleted = postgres_script(env, "delete", str(state))
        shutil.rmtree(planted, ignore_errors=True)
    assert deleted.returncode == 0, deleted.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL's own user needs root")
def test_stopping_a_copy_of_the_state_folder_leaves_the_original_running():
    """A backup of a state folder that holds its data (`cp -a` while it runs) carries the
    original's pid file; stopping the copy must not stop the original."""
    import tempfile

    shared = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="pg-copy-test-"))
    shared.chmod(0o755)  # PostgreSQL's user can reach it, so the data sits inside the state folder
    env = subprocess_env("", POSTGRES_PASSWORD=f"pg-{uuid.uuid4().hex}")
    state, copy, port = shared / "state", shared / "copy", free_port()
    try:
        started = postgres_script(env, "postgres", str(state), str(port))
        assert started.returncode == 0 and started.stdout.strip().endswith(f"(data in {state / 'pg'})"), started
        subprocess.run(["cp", "-a", str(state), str(copy)], check=True)
        refused = postgres_script(env, "stop", str(copy))
        assert refused.returncode == 2 and "a copy of that folder?" in refused.stderr, refused.stderr
        assert port_open(port), "the original still runs"
    finally:
        deleted = postgres_script(env, "delete", str(state))
        shutil.rmtree(shared)
    assert deleted.returncode == 0, deleted.stderr


@pytest.mark.parametrize("port", ["abc", "0", "70000", "5432;id"])
def test_a_port_that_is_not_a_port_is_refused_in_one_line_before_anything_is_made(tmp_path, port):
    state = tmp_path / "state"
    done = postgres_script(subprocess_env(""), "postgres", str(state), port)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"port '{port}' is not a port; expected a whole number from 1 to 65535"]
    assert not state.exists()


def test_start_refuses_a_data_folder_it_did_not_make(tmp_path):
    """The folder under /var/tmp has a predictable name: a link (or another user's folder) put
    there first is refused, never followed."""
    import hashlib

    state = tmp_path / "state"
    state.mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    planted = [state / "pg", Path(f"/var/tmp/mlflow-pg-{hashlib.sha1(str(state).encode()).hexdigest()[:12]}")]
    for link in planted:
        link.symlink_to(target)
    try:
        env = subprocess_env("", POSTGRES_PASSWORD=f"pg-{uuid.uuid4().hex}")
        started = postgres_script(env, "postgres", str(state), str(free_port()))
    finally:
        for link in planted:
            link.unlink()
    assert started.returncode == 2 and "is a link, not a folder, or owned by" in started.stderr, started.stderr
    assert not any(target.iterdir()), "nothing was written through the link"


@pytest.mark.skipif(os.geteuid() != 0, reason="another user's folder needs root to make")
def test_start_refuses_another_users_folder_at_the_predictable_name(tmp_path):
    import hashlib
    import pwd

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    state = private / "state"  # PostgreSQL's user cannot reach it: the data would go to /var/tmp
    state.mkdir()
    planted = Path(f"/var/tmp/mlflow-pg-{hashlib.sha1(str(state).encode()).hexdigest()[:12]}")
    planted.mkdir()
    try:
        os.chown(planted, pwd.getpwnam("nobody").pw_uid, -1)
        env = subprocess_env("", POSTGRES_PASSWORD=f"pg-{uuid.uuid4().hex}")
        started = postgres_script(env, "postgres", str(state), str(free_port()))
        assert started.returncode == 2 and "owned by 'nobody'" in started.stderr, started.stderr
        assert not any(planted.iterdir())
    finally:
        shutil.rmtree(planted)


def test_requests_need_the_right_credentials_and_an_allowed_host(team_server):
    api = f"{team_server}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(api, timeout=30).status_code == 401
    assert requests.get(api, auth=(ADMIN, "wrong-password-123"), timeout=30).status_code == 401
    assert requests.get(api, auth=("admin", "password1234"), timeout=30).status_code == 401, (
        "MLflow's default admin password must not work"
    )
    assert requests.get(api, auth=(ADMIN, PASSWORD), timeout=30).status_code == 200
    assert requests.get(api, auth=(ADMIN, PASSWORD), headers={"Host": "evil.example"}, timeout=30).status_code == 403
    # Checked passwords are cached (MLFLOW_AUTH_CACHE_TTL_SECONDS): a wrong one must still fail after a right one.
    assert requests.get(api, auth=(ADMIN, PASSWORD + "x"), timeout=30).status_code == 401


def run_main(team_server, experiment, credentials: dict[str, str], **params) -> subprocess.CompletedProcess:
    command = [
        str(BIN_DIR / "mlflow"),
        "run",
        str(PROJECT_DIR),
        "--env-manager",
        "local",
        f"--experiment-name={experiment}",
    ]
    for name, value in params.items():
        command += ["-P", f"{name}={value}"]
    return subprocess.run(
        command,
        env={**subprocess_env(team_server), **credentials},
        capture_output=True,
        text=True,
        timeout=900,
        cwd=PROJECT_DIR,
    )


@pytest.mark.parametrize(
    "credentials",
    [{}, {"MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": "wrong-password-123"}],
    ids=["none", "wrong"],
)
def test_pipeline_without_valid_credentials_fails_clearly(team_server, team_client, credentials):
    experiment = f"denied-{uuid.uuid4().hex[:6]}"
    completed = run_main(team_server, experiment, credentials, model_name="never")
    assert completed.returncode != 0
    last_line = (completed.stdout + completed.stderr).strip().splitlines()[-1]
    assert "401" in last_line and "not authenticated" in last_line, last_line
    assert team_client.get_experiment_by_name(experiment) is None
    assert os.environ.get("MLFLOW_TRACKING_PASSWORD") == PASSWORD


def test_four_pipelines_at_once_on_postgres_with_credentials(
    team_server, team_client, tmp_path, team_stack, s3_endpoint
):
    """Four `main` pipelines at once, one model name: unique version numbers, `production` on the
    best version (register steps take turns through the promotion lock), the others archived, the
    password nowhere in what the runs logged, and every artifact in the bucket, none on the server host."""
    experiment, name = f"together-{uuid.uuid4().hex[:6]}", f"together-{uuid.uuid4().hex[:6]}"
    credentials = {"MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    env = {**subprocess_env(team_server), **credentials}
    # MLflow's CLI creates a missing experiment without handling a concurrent creation of the same name.
    team_client.create_experiment(experiment)
    processes = []
    for strength in (0.001, 0.01, 0.1, 1.0):
        command = [
            str(BIN_DIR / "mlflow"),
            "run",
            str(PROJECT_DIR),
            "--env-manager",
            "local",
            f"--experiment-name={experiment}",
        ]
        command += ["-P", "algorithm=lr", "-P", f"params=C={strength}", "-P", f"model_name={name}"]
        processes.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=PROJECT_DIR
            )
        )
    outputs = [process.communicate(timeout=900)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]

    versions = team_client.search_model_versions(f"name = '{name}'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4]
    scores = {v.version: team_client.get_run(v.run_id).data.metrics["test_roc_auc"] for v in versions}
    production = team_client.get_model_version_by_alias(name, "production")
    assert scores[production.version] == max(scores.values()), (production.version, scores)
    for version in versions:
        promoted = version.tags["gate.decision"] == "promoted"
        assert promoted or scores[version.version] < max(scores.values()), (
            "a rejected version was not worse than the best"
        )
        # Only the alias holder keeps the stage; earlier ones were archived one by one (MLflow's own
        # archive_existing_versions emits SQL that PostgreSQL refuses).
        expected_stage = "Production" if version.version == production.version else ("Archived" if promoted else "None")
        assert version.current_stage == expected_stage, (version.version, version.current_stage)
    from tabular_pipeline.registry.lock_queue import queue_filter

    assert not team_client.search_model_versions(queue_filter(name)), "every ticket of the lock is released"

    runs = runs_of(team_client, experiment)
    assert {r.data.tags["mlflow.project.entryPoint"] for r in runs} == {
        "main",
        "download",
        "process",
        "train_basic",
        "register",
    }
    for run in runs:
        assert run.info.status == "FINISHED"
        for key, value in {**run.data.params, **run.data.tags}.items():
            assert PASSWORD not in value, f"{key} of run {run.info.run_id} holds the password"
    first = next(r for r in runs if r.data.tags["mlflow.project.entryPoint"] == "main")
    for run in [first, *[r for r in runs if r.data.tags.get("mlflow.parentRunId") == first.info.run_id]]:
        folder = Path(team_client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id)))
        files = {file.relative_to(folder).as_posix() for file in folder.rglob("*") if file.is_file()}
        for file in files:
            assert PASSWORD.encode() not in (folder / file).read_bytes(), f"{file} holds the password"
        # What the server hands out is what the bucket holds.
        assert files == bucket_files(s3_endpoint, run.info.artifact_uri), run.data.tags["mlflow.project.entryPoint"]
    for version in versions:
        assert all(PASSWORD not in value for value in version.tags.values())

    # Where `models:/<name>@production` resolves to, for serving and predict alike.
    model_files = team_client.get_model_version_download_uri(name, production.version)
    assert "MLmodel" in bucket_files(s3_endpoint, model_files), model_files
    assert "card.html" in bucket_files(s3_endpoint, team_client.get_run(production.run_id).info.artifact_uri)
    assert not (team_stack.state / "artifacts").exists()
    assert not [path for path in team_stack.state.rglob("*") if path.name in ("MLmodel", "card.html")]

    # Serving and predict fetch that model from the bucket through the server, with the user's credentials.
    rows = pd.read_csv(PROJECT_DIR / "data" / "breast_cancer.csv").head(20)
    features = rows.drop(columns=["label"])
    with served_model(f"models:/{name}@production", team_server, env=env) as url:
        request = {"dataframe_split": json.loads(features.to_json(orient="split", index=False))}
        answer = requests.post(f"{url}/invocations", json=request, timeout=60)
    assert answer.status_code == 200, answer.text
    rows.to_csv(tmp_path / "new.csv", index=False)
    scored = tmp_path / "scored.parquet"
    predict = [str(BIN_DIR / "mlflow"), "run", str(PROJECT_DIR), "-e", "predict", "--env-manager", "local"]
    predict += [f"--experiment-name={experiment}", "-P", f"model_uri=models:/{name}@production"]
    predict += ["-P", f"data_path={tmp_path / 'new.csv'}", "-P", f"output={scored}", "-P", "key_columns=label"]
    done = subprocess.run(predict, env=env, capture_output=True, text=True, timeout=600, cwd=PROJECT_DIR)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert list(pd.read_parquet(scored)["prediction"]) == answer.json()["predictions"]


BOB_TAKES_THE_LOCK = """
import sys, time
from mlflow import MlflowClient
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.registry.lock import promotion_lock

model, timeout_s = sys.argv[1], float(sys.argv[2])
client = MlflowClient()
experiment = client.get_experiment(client.create_experiment("bob-" + model + "-" + sys.argv[3]))
run_id = client.create_run(experiment.experiment_id).info.run_id
started = time.monotonic()
try:
    with promotion_lock(client, model, run_id, timeout_s=timeout_s):
        print("outcome: acquired")
except PipelineError as error:
    print("outcome: refused:", error)
finally:
    client.set_terminated(run_id)
print(f"seconds: {time.monotonic() - started:.1f}")
"""


def bob_tries(team_server, bob: str, model: str, timeout_s: float) -> tuple[str, float]:
    env = {**subprocess_env(team_server), "MLFLOW_TRACKING_USERNAME": bob, "MLFLOW_TRACKING_PASSWORD": BOB_PASSWORD}
    command = [str(BIN_DIR / "python"), "-c", BOB_TAKES_THE_LOCK, model, str(timeout_s), uuid.uuid4().hex[:6]]
    done = subprocess.run(command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(
        line.split(": ", 1) for line in done.stdout.splitlines() if line.startswith(("outcome: ", "seconds: "))
    )
    return lines["outcome"], float(lines["seconds"])


BOB_PASSWORD = f"bob-{uuid.uuid4().hex}"
ALICE_PASSWORD = f"alice-{uuid.uuid4().hex}"


def test_two_users_share_the_promotion_lock_and_never_break_each_others(team_server, monkeypatch):
    """Alice holds the lock while Bob tries: without permission on the project's promotion queue
    Bob fails at once in one line (no spinning, her ticket untouched); with EDIT he waits with
    backoff and gives up at his deadline, still without touching her ticket; once she is done, or
    her run has ended without releasing, he gets it. EDIT is enough: what he cannot delete he
    tags released."""
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    from tabular_pipeline.registry.lock import promotion_lock
    from tabular_pipeline.registry.lock_queue import QUEUE_MODEL, TAG_HEARTBEAT, TAG_LOCK_MODEL, queue_filter

    def act_as(user: str, password: str) -> None:  # MLflow's clients read the credentials per request
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)

    admin = get_app_client("basic-auth", tracking_uri=team_server)
    suffix = uuid.uuid4().hex[:6]
    alice_name, bob = f"alice-{suffix}", f"bob-{suffix}"
    act_as(ADMIN, PASSWORD)
    admin.create_user(alice_name, ALICE_PASSWORD)
    admin.create_user(bob, BOB_PASSWORD)
    # The queue is one bookkeeping model for every name: the team's admin creates it once.
    if not MlflowClient(team_server).search_registered_models(f"name = '{QUEUE_MODEL}'"):
        MlflowClient(team_server).create_registered_model(QUEUE_MODEL)
    admin.grant_user_permission(alice_name, "registered_model", QUEUE_MODEL, "MANAGE")
    model = f"shared-{suffix}"
    act_as(alice_name, ALICE_PASSWORD)
    alice = MlflowClient(team_server)
    experiment = alice.create_experiment(f"alice-{model}")

    def tickets():
        versions = alice.search_model_versions(queue_filter(model))
        return [(int(v.version), v.run_id) for v in versions if v.tags.get("pipeline.lock_released") != "true"]

    holder = alice.create_run(experiment).info.run_id
    with promotion_lock(alice, model, holder):
        [(ticket, _)] = tickets()
        outcome, seconds = bob_tries(team_server, bob, model, timeout_s=30)
        assert (
            outcome.startswith("refused: could not queue for the promotion lock") and "PERMISSION_DENIED" in outcome
        ), outcome
        assert seconds < 15, "refused at once, not after spinning to the deadline"
        assert tickets() == [(ticket, holder)]

        act_as(ADMIN, PASSWORD)
        admin.grant_user_permission(bob, "registered_model", QUEUE_MODEL, "EDIT")
        act_as(alice_name, ALICE_PASSWORD)
        outcome, seconds = bob_tries(team_server, bob, model, timeout_s=3)
        assert outcome.startswith(
            f"refused: run {holder} holds the promotion lock of '{model}' and is still running after 3 s"
        ), outcome
        assert tickets() == [(ticket, holder)], "Bob released only his own ticket"
    alice.set_terminated(holder)
    outcome, _ = bob_tries(team_server, bob, model, timeout_s=30)
    assert outcome == "acquired"

    crashed = alice.create_run(experiment).info.run_id
    tags = {TAG_LOCK_MODEL: model, TAG_HEARTBEAT: "1@0"}
    alice.create_model_version(QUEUE_MODEL, f"runs:/{crashed}/promotion-lock", run_id=crashed, tags=tags)
    alice.set_terminated(crashed, "FAILED")
    outcome, _ = bob_tries(team_server, bob, model, timeout_s=30)
    assert outcome == "acquired", "a ticket whose run has ended does not block"
    assert [run for _, run in tickets()] == [crashed], "Bob may not delete Alice's ended ticket: it stays, skipped"


def test_the_s3_secret_stays_in_the_server_environment(team_stack):
    """The destination is on the server's command line; the S3 secret key is on no command line of
    the server or its workers, and in nothing the script printed or the server logged."""
    import psutil

    server = psutil.Process(int((team_stack.state / "mlflow.pid").read_text()))
    command_lines = [" ".join(process.cmdline()) for process in [server, *server.children(recursive=True)]]
    assert f"--artifacts-destination s3://{BUCKET}/{PREFIX}" in command_lines[0]
    assert f"Artifacts (served by it): s3://{BUCKET}/{PREFIX}" in team_stack.output
    log = (team_stack.state / "mlflow.log").read_text(errors="replace")
    for text in [*command_lines, team_stack.output, log]:
        assert S3_SECRET not in text and PASSWORD not in text
