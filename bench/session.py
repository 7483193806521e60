"""A benchmark session: the sizes of a run, a tracking server of its own, and helpers that run
entry points and scripts and time them."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click

PROJECT_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    """How big and how often: the full run and the smoke run differ only here."""

    repeats: int
    large_rows: int
    batch_rows: int
    automl_rows: int
    automl_budget: float
    requests: int


FULL = Sizes(repeats=3, large_rows=300_000, batch_rows=1_000_000, automl_rows=20_000, automl_budget=60, requests=300)
QUICK = Sizes(repeats=1, large_rows=2_000, batch_rows=5_000, automl_rows=1_000, automl_budget=2, requests=20)


@contextmanager
def quiet_mlflow():
    """MLflow calls made in the bench's own process without what the steps also turn off: the
    artifact progress bars and the "View run" links; and without the advice to add an input
    example when logging the serving benchmark's zeros model."""
    import os
    import warnings

    settings = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*An input example was not provided")
            yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def log(message: str) -> None:
    print(f"{datetime.now():%H:%M:%S} [bench] {message}", file=sys.stderr, flush=True)


class Bench:
    """One benchmark session: a tracking server, a scratch folder, and helpers to run things."""

    def __init__(self, scratch: Path, tracking_uri: str):
        self.scratch, self.tracking_uri = scratch, tracking_uri
        self.bin = Path(sys.executable).parent

    def env(self) -> dict[str, str]:
        from tests.conftest import subprocess_env

        return subprocess_env(self.tracking_uri)

    def timed(self, command: list[str]) -> tuple[float, str]:
        """Run a command to completion; return its wall time and standard output, or stop on failure."""
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=self.env(), cwd=PROJECT_DIR)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise click.ClickException(f"{' '.join(command[:6])} ... failed:\n{(done.stdout + done.stderr)[-3000:]}")
        return seconds, done.stdout

    def mlflow_run(self, entry_point: str, params: dict[str, object], experiment: str) -> tuple[float, str]:
        from tests.conftest import project_command

        return self.timed(project_command(entry_point, params, experiment))

    def python(self, module: str, *args: str) -> tuple[float, str]:
        return self.timed([sys.executable, "-m", module, *args])

    def latest_run(self, experiment: str, entry_point: str):
        from mlflow import MlflowClient

        client = MlflowClient(self.tracking_uri)
        found = client.get_experiment_by_name(experiment)
        runs = client.search_runs(
            [found.experiment_id],
            f"tags.`pipeline.entry_point` = '{entry_point}'",
            order_by=["start_time DESC"],
            max_results=1,
        )
        return runs[0]


@contextmanager
def tracking_server(scratch: Path, existing: str):
    """The given tracking server, or a fresh `mlflow server` (SQLite) on a free loopback port."""
    from tests.conftest import BIN_DIR, free_port, stop_process, subprocess_env, wait_until_healthy

    if existing:
        yield existing
        return
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(BIN_DIR / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{scratch / 'mlflow.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(scratch / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=subprocess_env(""),
        cwd=scratch,
    )
    try:
        wait_until_healthy(url, server, 120)
        yield url
    finally:
        stop_process(server)


def measured_commit() -> str:
    """The commit the figures belong to, with "+changes" when the working tree differs from it."""
    folder = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=folder)
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=folder
        )
    except OSError:  # no git: the timings still count
        return "unknown"
    return (commit.stdout.strip() or "unknown") + ("+changes" if changed.stdout.strip() else "")


def scratch_experiment(tracking_uri: str, name: str, folder: Path, artifacts_folder: str = "artifacts") -> str:
    """The id of experiment `name` in a local SQLite store, its artifacts in `folder/artifacts_folder`.

    A SQLite store's experiments otherwise keep their artifacts in `./mlruns` of the working
    directory, which is the checkout's when a benchmark runs from it. An experiment of that name
    that keeps them elsewhere is refused rather than written into.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    location = (folder / artifacts_folder).as_uri()
    found = client.get_experiment_by_name(name)
    if found is None:
        return client.create_experiment(name, artifact_location=location)
    if found.artifact_location != location:
        raise click.ClickException(
            f"experiment '{name}' keeps its artifacts at {found.artifact_location}, not {location}; "
            "expected another experiment name"
        )
    return found.experiment_id


def experiment_beside_store(name: str) -> str:
    """The id of experiment `name` in the current tracking store. A local SQLite store's
    experiment keeps its artifacts in `mlartifacts` beside the database file (MLflow's default
    would be `./mlruns` of the working directory, wherever the database is; `mlartifacts` is where
    `mlflow server` keeps them, and `.gitignore` leaves it out); a tracking server keeps them where
    it is configured to."""
    import mlflow

    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///")).resolve()
        return scratch_experiment(uri, name, database.parent, "mlartifacts")
    return mlflow.set_experiment(name).experiment_id
