"""End to end: faults. A step killed with SIGTERM or SIGKILL while it trains, and a tracking server
restarted in the middle of a pipeline."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import BIN_DIR, PROJECT_DIR, free_port, project_command, stop_process, subprocess_env, wait_until_healthy
from helpers import runs_of
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

pytestmark = pytest.mark.e2e
SAMPLE = PROJECT_DIR / "data" / "breast_cancer.csv"


def parent_of(pid: int) -> int | None:
    try:
        # The command name (field 2) may hold spaces; the parent id is the 2nd field after it.
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def descendant_running(root: int, needle: str) -> int | None:
    """The pid of a Python process below `root` whose command line contains `needle`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or b"python" not in Path(argv[0].decode(errors="replace")).name.encode() or needle.encode() not in b" ".join(argv):
            continue
        pid, ancestor = int(entry.name), parent_of(int(entry.name))
        while ancestor and ancestor != root:
            ancestor = parent_of(ancestor)
        if ancestor == root:
            return pid
    return None


def start_main(params: dict, experiment: str, tracking_uri: str) -> subprocess.Popen:
    command = project_command("main", params, experiment)
    return subprocess.Popen(
        command, cwd=PROJECT_DIR, env=subprocess_env(tracking_uri), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )


def kill_step_while_it_trains(process: subprocess.Popen, client, experiment: str, sig: int, timeout_s: float = 300) -> str:
    """Wait until train_automl has a RUNNING run and a live process, send `sig`, return main's output."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        running = [r for r in runs_of(client, experiment, "train_automl") if r.info.status == "RUNNING"]
        pid = descendant_running(process.pid, "steps.train_automl") if running else None
        if pid:
            time.sleep(3)  # inside the search (its budget is 12 s)
            os.kill(pid, sig)
            break
        time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("train_automl never started")
    output, _ = process.communicate(timeout=300)
    print(output[-4000:])
    return output


def test_killed_steps_leave_no_running_run_no_version_and_resume_where_they_failed(client, tracking_uri, experiment_name):
    name = f"faults-{uuid.uuid4().hex[:6]}"
    params = {"tool": "flaml", "time_budget": 12, "params": "estimator_list=['lgbm']", "model_name": name, "data_path": SAMPLE}

    for sig in (signal.SIGTERM, signal.SIGKILL):
        process = start_main(params, experiment_name, tracking_uri)
        output = kill_step_while_it_trains(process, client, experiment_name, sig)
        assert process.returncode != 0
        assert any(line.startswith("error: main: step train_automl failed") for line in output.splitlines()), output[-3000:]
        train = runs_of(client, experiment_name, "train_automl")[0]
        # The step ends its run KILLED on SIGTERM, but MLflow's project runner then overwrites any
        # non-zero exit as FAILED (it compares a status string with integer codes).
        assert train.info.status in ("FAILED", "KILLED"), (sig, train.info.status)
        if sig == signal.SIGTERM:
            assert train.data.tags["pipeline.error"] == "terminated by SIGTERM"
        assert runs_of(client, experiment_name, "main")[0].info.status == "FAILED"
        assert not [r.info.run_id for r in runs_of(client, experiment_name) if r.info.status == "RUNNING"]
        with pytest.raises(MlflowException):
            client.get_registered_model(name)

    process = start_main(params, experiment_name, tracking_uri)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    assert "download     reused" in output and "process      reused" in output, "finished steps are reused"
    assert "train_automl started" in output, "the failed step reruns"
    assert [r.info.status for r in runs_of(client, experiment_name, "download")] == ["FINISHED"]
    assert len(runs_of(client, experiment_name, "train_automl")) == 3
    assert client.get_model_version_by_alias(name, "production").version == "1"


def start_server(root: Path, port: int) -> subprocess.Popen:
    command = [
        str(BIN_DIR / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env(""), cwd=root)
    wait_until_healthy(f"http://127.0.0.1:{port}", process, 120)
    return process


def test_server_restart_mid_pipeline_completes_or_fails_clearly_without_half_registered_versions(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    client = MlflowClient(url)
    experiment, name = f"restart-{uuid.uuid4().hex[:6]}", f"restart-{uuid.uuid4().hex[:6]}"
    process = start_main({"algorithm": "lr", "model_name": name}, experiment, url)
    try:
        deadline = time.monotonic() + 300
        while not runs_of(client, experiment, "train_basic") and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
        stop_process(server)
        time.sleep(5)  # MLflow's client retries with exponential backoff meanwhile
        server = start_server(tmp_path, port)
        output, _ = process.communicate(timeout=600)
        print(output[-4000:])
        if process.returncode == 0:
            version = client.get_model_version_by_alias(name, "production")
            assert version.status == "READY" and version.version == "1"
        else:
            assert any(line.startswith("error: ") for line in output.splitlines()), output[-3000:]
            for version in client.search_model_versions(f"name = '{name}'"):
                assert version.aliases, f"version {version.version} was left registered without its alias"
        assert not [r.info.run_id for r in runs_of(client, experiment) if r.info.status == "RUNNING"]
    finally:
        if process.poll() is None:
            process.kill()
        stop_process(server)


def test_two_pipelines_at_once_on_the_sqlite_default_work_or_fail_clearly_and_keep_the_store_intact(tmp_path):
    import sqlite3

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment, name = "together", f"sqlite-{uuid.uuid4().hex[:6]}"
    client.create_experiment(experiment, artifact_location=(tmp_path / "artifacts").as_uri())  # schema created once
    processes = [start_main({"algorithm": "lr", "params": f"C={c}", "model_name": name}, experiment, uri) for c in (0.1, 1.0)]
    outputs = [process.communicate(timeout=900)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        print(output[-3000:])
        assert process.returncode == 0 or any(line.startswith("error: ") for line in output.splitlines()), output[-3000:]

    with sqlite3.connect(tmp_path / "mlflow.db") as database:
        assert database.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    runs = runs_of(client, experiment)
    assert runs and not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    versions = [int(v.version) for v in client.search_model_versions(f"name = '{name}'")]
    assert len(versions) == len(set(versions)) == sum(process.returncode == 0 for process in processes)
