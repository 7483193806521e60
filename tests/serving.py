"""Start `mlflow models serve` on a free loopback port for a test, and stop it afterwards."""

from __future__ import annotations

import subprocess
import tempfile
from contextlib import contextmanager

from conftest import BIN_DIR, free_port, stop_process, subprocess_env, wait_until_healthy


@contextmanager
def served_model(
    model_uri: str, tracking_uri: str, env_manager: str = "local", timeout_s: float = 300, env: dict | None = None
):
    """Yield the base URL of a scoring server for `model_uri`, once `/ping` answers (`env`: the
    server's whole environment, when not the tests' usual one)."""
    port = free_port()
    # MLflow downloads a `models:/` or `runs:/` model to a temporary folder it never removes.
    with tempfile.TemporaryDirectory(prefix="served-model-") as temp_dir:
        process = subprocess.Popen(
            [
                str(BIN_DIR / "mlflow"),
                "models",
                "serve",
                "-m",
                model_uri,
                "--port",
                str(port),
                "-h",
                "127.0.0.1",
                "--env-manager",
                env_manager,
            ],
            env={**(env or subprocess_env(tracking_uri)), "TMPDIR": temp_dir},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(url, process, timeout_s, path="/ping")
            yield url
        finally:
            stop_process(process)
