"""End to end: faults. A step killed with SIGTERM or SIGKILL while it trains, and a tracking server
restarted in the middle of a pipeline."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psutil
import pytest
from conftest import (
    BIN_DIR,
    PROJECT_DIR,
    free_port,
    project_command,
    stop_process,
    subprocess_env,
    wait_until_healthy,
    wait_until_port_free,
)
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
        if (
            not argv
            or b"python" not in Path(argv[0].decode(errors="replace")).name.encode()
            or needle.encode() not in b" ".join(argv)
        ):
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
        command,
        cwd=PROJECT_DIR,
        env=subprocess_env(tracking_uri),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )


def process_tree(root: int) -> dict[int, str]:
    """pid -> "name: command line" of `root` and everything below it."""
    try:
        parent = psutil.Process(root)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    tree = {}
    for process in processes:
        try:
            tree[process.pid] = f"{process.name()}: {' '.join(process.cmdline())[:160]}"
        except psutil.NoSuchProcess:
            pass
    return tree


def kill_tree(process: subprocess.Popen) -> None:
    """Kill `process` and everything below it (main and its steps would otherwise go on)."""
    for pid in reversed(list(process_tree(process.pid))):
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    process.wait(timeout=30)


def survivors(tree: dict[int, str], grace_s: float = 20.0) -> list[str]:
    """The processes of `tree` still alive after `grace_s` (zombies count as ended)."""
    deadline = time.monotonic() + grace_s
    while True:
        alive = []
        for pid, description in tree.items():
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{description} (pid {pid})")
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def kill_while_it_trains(
    process: subprocess.Popen, client, experiment: str, sig: int, target: str, timeout_s: float = 300
) -> tuple[str, list[str]]:
    """Wait until train_automl has a RUNNING run and a live process, send `sig` to `target` (the
    step, or main), and return main's output and every process of the tree that outlived it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        # MLflow creates the step's run before it starts the step; the step tags it once its own
        # SIGTERM handler is in place, so only then is a signal handled rather than fatal.
        running = [
            r
            for r in runs_of(client, experiment, "train_automl")
            if r.info.status == "RUNNING" and "pipeline.entry_point" in r.data.tags
        ]
        pid = descendant_running(process.pid, "steps.train_automl") if running else None
        if pid:
            time.sleep(3)  # inside the search (its budget is 12 s)
            tree = process_tree(process.pid)
            targets = {"step": pid, "cli": process.pid}  # the `mlflow run` CLI itself
            os.kill(targets.get(target) or descendant_running(process.pid, "-m main"), sig)
            break
        time.sleep(0.5)
    else:
        kill_tree(process)
        pytest.fail("train_automl never started")
    output, _ = process.communicate(timeout=120)
    print(output[-4000:])
    return output, survivors(tree)


def test_killed_steps_leave_no_process_no_running_run_no_version_and_resume_where_they_failed(
    client, tracking_uri, experiment_name
):
    """SIGTERM and SIGKILL to the training step, SIGTERM to `main` itself, then SIGKILL to the
    `mlflow run` CLI that waits on `main`: `main` fails in one line, no process of the pipeline
    outlives it (a library's JVM included), no run stays RUNNING, nothing is registered, and the
    next `main` resumes where it failed."""
    name = f"faults-{uuid.uuid4().hex[:6]}"
    params = {
        "tool": "flaml",
        "time_budget": 12,
        "params": "estimator_list=['lgbm']",
        "model_name": name,
        "data_path": SAMPLE,
    }

    stops = ((signal.SIGTERM, "step"), (signal.SIGKILL, "step"), (signal.SIGTERM, "main"), (signal.SIGKILL, "cli"))
    for sig, target in stops:
        process = start_main(params, experiment_name, tracking_uri)
        output, alive = kill_while_it_trains(process, client, experiment_name, sig, target)
        assert not alive, f"outlived the pipeline after {sig.name} to {target}: {alive}"
        assert process.returncode != 0
        train = runs_of(client, experiment_name, "train_automl")[0]
        main_run = runs_of(client, experiment_name, "main")[0]
        if target == "step":
            assert any(line.startswith("error: main: step train_automl failed") for line in output.splitlines()), (
                output[-3000:]
            )
            assert main_run.info.status == "FAILED"
        elif target == "main":
            assert (
                main_run.info.status in ("FAILED", "KILLED")
                and main_run.data.tags["pipeline.error"] == "terminated by SIGTERM"
            )
        else:  # nothing is left to record main's outcome but main: it stops as its caller is gone
            assert main_run.info.status == "KILLED", main_run.info.status
            assert main_run.data.tags["pipeline.error"] == (
                f"stopped because the process that started it (pid {process.pid}) ended"
            )
        # The step ends its own run KILLED on SIGTERM, but MLflow's project runner then records any
        # non-zero exit as FAILED (it compares a status string with integer codes).
        assert train.info.status in ("FAILED", "KILLED"), (sig, target, train.info.status)
        if sig == signal.SIGTERM:
            assert train.data.tags["pipeline.error"] == "terminated by SIGTERM", "the step ended its own run"
        assert not [r.info.run_id for r in runs_of(client, experiment_name) if r.info.status == "RUNNING"]
        with pytest.raises(MlflowException):
            client.get_registered_model(name)

    process = start_main(params, experiment_name, tracking_uri)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    assert "download     reused" in output and "process      reused" in output, "finished steps are reused"
    assert "train_automl started" in output, "the failed step reruns"
    assert [r.info.status for r in runs_of(client, experiment_name, "download")] == ["FINISHED"]
    assert len(runs_of(client, experiment_name, "train_automl")) == len(stops) + 1
    assert client.get_model_version_by_alias(name, "production").version == "1"


def start_server(root: Path, port: int) -> subprocess.Popen:
    command = [
        str(BIN_DIR / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env(""), cwd=root
    )
    wait_until_healthy(f"http://127.0.0.1:{port}", process, 120)
    return process


def test_a_server_restart_mid_pipeline_is_ridden_out(tmp_path):
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
        wait_until_port_free(port)  # else the next health check can reach the old server's child
        time.sleep(5)  # MLflow's client retries with exponential backoff meanwhile
        server = start_server(tmp_path, port)
        output, _ = process.communicate(timeout=600)
        print(output[-4000:])
        # A few seconds of outage are within MLflow's client retries: the pipeline must complete.
        assert process.returncode == 0, output[-3000:]
        assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == ["1"]
        version = client.get_model_version_by_alias(name, "production")
        assert version.status == "READY" and version.version == "1" and version.tags["gate.decision"] == "promoted"
        runs = runs_of(client, experiment)
        assert {r.data.tags["mlflow.project.entryPoint"] for r in runs} == {
            "main",
            "download",
            "process",
            "train_basic",
            "register",
        }
        assert [r.info.status for r in runs] == ["FINISHED"] * len(runs), [
            (r.data.tags["mlflow.project.entryPoint"], r.info.status) for r in runs
        ]
    finally:
        if process.poll() is None:
            kill_tree(process)
        stop_process(server)


def test_two_pipelines_at_once_on_the_sqlite_default_both_finish_and_keep_the_store_intact(tmp_path):
    """Two pipelines registering the same model at once on a SQLite file (the default store): both
    finish, each version is judged by the gate in turn, the better one ends up in production, the
    store passes SQLite's integrity check, and nothing is left RUNNING."""
    import sqlite3

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment, name = "together", f"sqlite-{uuid.uuid4().hex[:6]}"
    client.create_experiment(experiment, artifact_location=(tmp_path / "artifacts").as_uri())  # schema created once
    strengths = ("0.001", "1.0")
    processes = [
        start_main({"algorithm": "lr", "params": f"C={c}", "model_name": name}, experiment, uri) for c in strengths
    ]
    outputs = [process.communicate(timeout=900)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]

    with sqlite3.connect(tmp_path / "mlflow.db") as database:
        assert database.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    runs = runs_of(client, experiment)
    assert [r.info.status for r in runs] == ["FINISHED"] * len(runs) == ["FINISHED"] * 10
    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    scores = {str(v.version): client.get_run(v.run_id).data.metrics["test_roc_auc"] for v in versions}
    holder = client.get_model_version_by_alias(name, "production")
    assert scores[str(holder.version)] == max(scores.values()) and holder.tags["gate.decision"] == "promoted"
