"""Checks of the deployment files that cannot run here (no Docker engine on these machines)."""

import os
import re
import subprocess
from importlib import metadata
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_tracking_compose_has_no_default_credentials_and_sets_allowed_hosts():
    text = (DEPLOY / "tracking" / "compose.yaml").read_text()
    for secret in ("POSTGRES_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert re.search(rf"\$\{{{secret}:\?", text), f"{secret} must be required, with no default"
    services = yaml.safe_load(text)["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    entrypoint = (DEPLOY / "tracking" / "entrypoint.sh").read_text()
    assert (
        "--app-name basic-auth" in entrypoint and "--allowed-hosts" in entrypoint and "--serve-artifacts" in entrypoint
    )
    assert "password1234" not in text + entrypoint
    assert "auth_cache_ttl_seconds = ${auth_cache_ttl}" in entrypoint, "checked passwords are cached"
    assert services["mlflow"]["environment"]["MLFLOW_AUTH_CACHE_TTL_SECONDS"] == "${MLFLOW_AUTH_CACHE_TTL_SECONDS:-60}"


def test_tracking_image_takes_an_s3_destination_with_credentials_from_the_shell_only():
    """The S3 settings pass through from the shell that runs compose (no value: unset when unset
    there), the image installs the boto3 the tests ran with, and entrypoint.sh refuses a malformed
    destination in one line before it writes or starts anything."""
    services = yaml.safe_load((DEPLOY / "tracking" / "compose.yaml").read_text())["services"]
    environment = services["mlflow"]["environment"]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        assert environment[name] is None, f"{name} must come from the shell, with no default"
    assert environment["MLFLOW_ARTIFACTS_DESTINATION"] == "${MLFLOW_ARTIFACTS_DESTINATION:-/mlartifacts}"
    assert f"boto3=={metadata.version('boto3')}\n" in (DEPLOY / "tracking" / "requirements.txt").read_text()
    env = {"PATH": os.environ["PATH"], "MLFLOW_AUTH_ADMIN_PASSWORD": "x" * 12, "MLFLOW_FLASK_SERVER_SECRET_KEY": "k"}
    env |= {"POSTGRES_PASSWORD": "p", "MLFLOW_ARTIFACTS_DESTINATION": "s3:/bucket"}
    entrypoint = DEPLOY / "tracking" / "entrypoint.sh"
    done = subprocess.run(["sh", str(entrypoint)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "MLFLOW_ARTIFACTS_DESTINATION is 's3:/bucket'; expected s3://bucket[/prefix]"
        " (or unset, for the /mlartifacts volume)"
    ]


def test_serving_compose_matches_dolphinschedulers_docker_job():
    service = yaml.safe_load((DEPLOY / "serving" / "compose.yaml").read_text())["services"]["model"]
    assert service["ports"] == ["${PORT:-7000}:8080"]
    limits = service["deploy"]["resources"]["limits"]
    assert limits == {"cpus": "${CPU_LIMIT:-1.0}", "memory": "${MEMORY_LIMIT:-1G}"}
    assert "http://127.0.0.1:8080/ping" in " ".join(service["healthcheck"]["test"])
