"""Checks of the deployment files that cannot run here (no Docker engine on these machines)."""

import re
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


def test_serving_compose_matches_dolphinschedulers_docker_job():
    service = yaml.safe_load((DEPLOY / "serving" / "compose.yaml").read_text())["services"]["model"]
    assert service["ports"] == ["${PORT:-7000}:8080"]
    limits = service["deploy"]["resources"]["limits"]
    assert limits == {"cpus": "${CPU_LIMIT:-1.0}", "memory": "${MEMORY_LIMIT:-1G}"}
    assert "http://127.0.0.1:8080/ping" in " ".join(service["healthcheck"]["test"])
