"""Containers for the Docker tests: podman behind a `docker` command (what `make docker-setup`
installs on a machine without a Docker engine), health checks run as podman's timer would, and
images and containers removed after the tests."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from conftest import subprocess_env

PODMAN_DOCKER = Path("/usr/bin/docker")  # podman-docker's `docker`, which runs podman


def docker_env(shim: Path, tracking_uri: str = "", **extra: str) -> dict[str, str]:
    """The tests' usual environment, with a `docker` that runs podman first on PATH: on these
    machines /usr/local/bin, which comes first, holds a Docker client without an engine."""
    env = subprocess_env(tracking_uri, **extra)
    env["PATH"] = f"{shim}:{env['PATH']}"
    return env


def podman_shim(folder: Path) -> Path:
    """A folder whose `docker` is podman-docker's, after checking that `make docker-setup` ran."""
    if shutil.which("podman") is None:
        engine = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True)
        if engine.returncode == 0:
            pytest.skip("these tests drive podman, which make docker-setup installs where no Docker engine answers")
        pytest.fail("podman is not installed: run `make docker-setup` (make test runs it)")
    # MLflow bases a model's image on python:<the Python it was logged from>-slim: this one's.
    base = f"docker.io/library/python:{platform.python_version()}-slim"
    if subprocess.run(["podman", "image", "exists", base]).returncode != 0:
        pytest.fail(f"no {base} image: run `make docker-setup` (make test runs it)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "docker").symlink_to(PODMAN_DOCKER if PODMAN_DOCKER.exists() else shutil.which("podman"))
    return folder


def docker(env: dict[str, str], *arguments: str, timeout_s: float = 900, check: bool = True, log: Path | None = None):
    """`docker <arguments>`; with `log`, its output goes to that file, and the last of it into the
    failure message."""
    if log is None:
        done = subprocess.run(["docker", *arguments], env=env, capture_output=True, text=True, timeout=timeout_s)
        output = done.stdout + done.stderr
    else:
        with log.open("w") as handle:
            done = subprocess.run(
                ["docker", *arguments], env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout_s
            )
        output = log.read_text(errors="replace")
    assert not check or done.returncode == 0, f"docker {' '.join(arguments[:3])}...: {output[-3000:]}"
    return done


def inspect(env: dict[str, str], name: str) -> dict:
    return json.loads(docker(env, "inspect", name).stdout)[0]


def run_health_checks(env: dict[str, str], name: str) -> dict:
    """Runs a container's own health check as its timer would (podman times health checks with
    systemd, which these machines lack): every interval, up to its retries, until healthy. Returns
    the container's health record."""
    check = inspect(env, name)["Config"]["Healthcheck"]
    for _ in range(check["Retries"]):
        if docker(env, "healthcheck", "run", name, check=False).returncode == 0:
            break
        time.sleep(check["Interval"] / 1e9)
    return inspect(env, name)["State"]["Health"]


def wait_for(url: str, timeout_s: float, name: str, env: dict[str, str]) -> None:
    """Waits until `url` answers 200; fails with the container's last log lines when it does not
    in time, or at once when the container has stopped."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if docker(env, "container", "inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "true":
            break
        time.sleep(1)
    logs = docker(env, "logs", "--tail", "30", name, check=False)
    pytest.fail(
        f"{url} did not answer ({name} stopped, or {timeout_s} s passed); its last lines:\n{logs.stdout}{logs.stderr}"
    )


def remove(env: dict[str, str], kind: str, *names: str) -> None:
    """Removes containers (kind `container`, stopped first), images, volumes or networks the tests made."""
    if names:
        force = ["--force", "--time", "10"] if kind == "container" else []
        subprocess.run(["docker", kind, "rm", *force, *names], env=env, capture_output=True, timeout=120)
