"""Shared fixtures: a real `mlflow server` on a free loopback port, and a helper that runs the
project's entry points with `mlflow run` as a subprocess against it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

PROJECT_DIR = Path(__file__).resolve().parents[1]
BIN_DIR = Path(sys.executable).parent
SERVER_START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 900


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, timeout_s: float, path: str = "/health") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited early with code {process.returncode}")
        try:
            if requests.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server at {url} did not answer {path} within {timeout_s} s")


def wait_until_port_free(port: int, timeout_s: float = 30) -> None:
    """Wait until nothing answers on a loopback port (a stopped server's children can linger)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"port {port} still answers {timeout_s} s after its server was stopped")


def stop_process(process: subprocess.Popen, grace_s: float = 20) -> None:
    """Terminate a server the tests started, and kill it if it does not stop in time."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()


def subprocess_env(tracking_uri: str, **extra: str) -> dict[str, str]:
    """The environment for `mlflow run`: this venv first on PATH, no run context leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = os.pathsep.join(
        [str(BIN_DIR), str(Path.home() / ".pyenv/bin"), str(Path.home() / ".pyenv/shims"), env.get("PATH", "")]
    )
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["PYTHONUNBUFFERED"] = "1"
    # MLflow 3.17's server otherwise starts six job-queue workers (GenAI jobs) per server: ~1.5 GB
    # and a CPU-second each for work these tests never ask for.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env.update(extra)
    return env


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests first (stable otherwise): with `-n 2 --dist loadfile` the long e2e files
    start early and the short unit files fill in at the end, instead of one long file running
    alone after the rest."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    """Start `mlflow server` (SQLite, served artifacts) for the whole session."""
    root = tmp_path_factory.mktemp("tracking")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = (root / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(BIN_DIR / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=subprocess_env(""),
        cwd=root,
    )
    try:
        wait_until_healthy(url, process, SERVER_START_TIMEOUT_S)
        yield url
    finally:
        stop_process(process)
        log_file.close()


@pytest.fixture(scope="session")
def project_virtualenv(tracking_uri) -> None:
    """The project's virtualenv, which `mlflow run` builds when no --env-manager is given (the
    lines DolphinScheduler generates), built once per machine before the tests that run such lines.

    MLflow takes an existing env folder as finished, so two test workers building it at the same
    moment would hand one of them a half-installed env: a file lock makes the second one wait,
    then find the env built, as any later run on the machine does.
    """
    from filelock import FileLock

    with FileLock(Path(tempfile.gettempdir()) / "tabular-pipeline-project-env.lock"):
        command = project_command("download", {}, "project-env", env_manager="virtualenv")
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=1500, env=subprocess_env(tracking_uri), cwd=PROJECT_DIR
        )
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-4000:]


MLFLOW_PROCESS_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
)


@contextmanager
def mlflow_process_state_restored():
    """Start from a clean MLflow process state and put the caller's back exactly afterwards: the
    tracking and registry URIs, the active experiment, and the environment variables that
    `mlflow.set_tracking_uri` and `mlflow.set_experiment` write. Left behind, one test's experiment
    id follows the next test of the worker into a store that has no such experiment."""
    import mlflow
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils
    import mlflow.tracking.fluent as fluent

    saved_env = {name: os.environ.get(name) for name in MLFLOW_PROCESS_ENV}
    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri, fluent._active_experiment_id)
    for name in MLFLOW_PROCESS_ENV:
        os.environ.pop(name, None)
    tracking_utils._tracking_uri = registry_utils._registry_uri = fluent._active_experiment_id = None
    try:
        yield
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        tracking_utils._tracking_uri, registry_utils._registry_uri, fluent._active_experiment_id = saved


@pytest.fixture()
def own_store(tmp_path):
    """A SQLite store of this test's own, with an experiment of its own set as the active one;
    MLflow's process-wide state is put back to the worker's afterwards."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with mlflow_process_state_restored():
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.MlflowClient(uri).create_experiment("own", artifact_location=(tmp_path / "art").as_uri())
        mlflow.set_experiment(experiment_id=experiment)
        yield mlflow.MlflowClient(uri)


@pytest.fixture()
def client(tracking_uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


@pytest.fixture()
def experiment_name() -> str:
    """A fresh experiment per test, so runs (and the step cache) never leak between tests."""
    return f"test-{uuid.uuid4().hex[:10]}"


@dataclass
class ProjectResult:
    returncode: int
    output: str

    def error_lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.startswith("error: ")]


def project_command(
    entry_point: str,
    params: dict[str, object] | None,
    experiment: str,
    env_manager: str | None = "local",
    uri: str | None = None,
    extra_args: list[str] | None = None,
) -> list[str]:
    """The `mlflow run` command line for an entry point of this project."""
    command = [str(BIN_DIR / "mlflow"), "run", uri or str(PROJECT_DIR), "-e", entry_point]
    for name, value in (params or {}).items():
        command += ["-P", f"{name}={value}"]
    command += [f"--experiment-name={experiment}"]
    if env_manager:
        command += ["--env-manager", env_manager]
    return command + (extra_args or [])


@pytest.fixture()
def run_project(tracking_uri, experiment_name):
    """Run an entry point with `mlflow run` in a subprocess and return its exit code and output."""

    def run(
        entry_point: str = "main",
        params: dict[str, object] | None = None,
        env_manager: str | None = "local",
        experiment: str | None = None,
        uri: str | None = None,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        timeout_s: float = RUN_TIMEOUT_S,
    ) -> ProjectResult:
        command = project_command(entry_point, params, experiment or experiment_name, env_manager, uri, extra_args)
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            env=subprocess_env(tracking_uri, **(env or {})),
            cwd=PROJECT_DIR,
        )
        output = completed.stdout + completed.stderr
        sys.stdout.write(output[-6000:])
        return ProjectResult(completed.returncode, output)

    return run


@contextmanager
def standalone_spark_cluster(root: Path, cores: int = 2, memory: str = "2g"):
    """A standalone Spark cluster on loopback, a master and one worker started from pyspark's own
    jars; yields its `spark://` URL and the master's status URL. Executors run in the worker's JVM
    with their own Python workers, so a model travels to them as it would on a real cluster."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    env = {**subprocess_env(""), "SPARK_HOME": str(spark_home), "SPARK_LOCAL_IP": "127.0.0.1"}
    port, master_ui = free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    daemons = []
    for name, arguments in (
        ("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                    "--webui-port", str(master_ui)]),
        ("worker", ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", str(cores),
                    "--memory", memory, "--webui-port", str(free_port()), "--work-dir", str(root / "work"), url]),
    ):  # fmt: skip
        log = (root / f"{name}.log").open("w")
        daemons.append(
            subprocess.Popen(
                [str(spark_home / "bin" / "spark-class"), *arguments],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=root,
            )
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{master_ui}/json/", timeout=5).json().get("aliveworkers", 0) >= 1:
                    break
            except (requests.RequestException, ValueError):
                pass
            assert time.monotonic() < deadline, (root / "worker.log").read_text()[-3000:]
            time.sleep(1)
        yield url, f"http://127.0.0.1:{master_ui}/json/"
    finally:
        for daemon in reversed(daemons):
            stop_process(daemon)


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory):
    """One standalone cluster for the session's Spark tests (`standalone_spark_cluster`)."""
    with standalone_spark_cluster(tmp_path_factory.mktemp("spark-cluster")) as cluster:
        yield cluster
