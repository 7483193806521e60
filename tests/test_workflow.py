"""Unit tests of the workflow's pure parts: input digests, env manager hand-down, summaries."""

from pathlib import Path
from types import SimpleNamespace

from tabular_pipeline.orchestration.report import format_summary
from tabular_pipeline.orchestration.workflow import StepResult, failed_run_id, parent_env_manager, source_digest


def test_source_digest_by_kind(tmp_path):
    (tmp_path / "t.csv").write_text("a,label\n1,0\n")
    assert source_digest("t.csv", tmp_path).startswith("sha256:")
    assert source_digest(str(tmp_path / "t.csv"), tmp_path) == source_digest("t.csv", tmp_path)
    assert source_digest("runs:/abc/raw", tmp_path) == "uri:runs:/abc/raw"
    assert source_digest("https://example.invalid/t.csv", tmp_path) is None
    assert source_digest("missing.csv", tmp_path) is None


def test_children_inherit_the_parent_env_manager():
    assert parent_env_manager({"mlflow.project.env": "virtualenv"}) == "virtualenv"
    assert parent_env_manager({}) == "local"


def test_failed_run_id_from_mlflow_message():
    assert failed_run_id("Run (ID 'abc123') failed") == "abc123"
    assert failed_run_id("something else") is None


def test_summary_lists_steps_model_and_ui():
    run = SimpleNamespace(info=SimpleNamespace(experiment_id="3", run_id="r0"))
    results = [
        StepResult("download", "r1", "3", "runs:/r1/raw", "sha256:1", True, 0.1),
        StepResult(
            "train_basic",
            "r2",
            "3",
            "models:/m-1",
            None,
            False,
            5.0,
            {"pipeline.primary_metric": "test_roc_auc"},
            {"test_roc_auc": 0.97},
        ),
        StepResult("register", "r3", "3", "models:/demo/2", None, False, 1.0),
    ]
    text = format_summary(
        results, run, "http://127.0.0.1:5000", "demo", "production", 6.1, Path("/p"), Path("/env/bin/python")
    )
    assert "http://127.0.0.1:5000/#/experiments/3/runs/r0" in text
    assert "runs:/r1/raw  (reused" in text
    assert "test_roc_auc = 0.9700" in text
    assert "models:/demo/2, promoted: models:/demo@production" in text
    assert "Open the UI: http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning" in text
    local = format_summary(
        results[:2], run, "sqlite:///mlflow.db", "", "production", 1.0, Path("/p"), Path("/env/bin/python")
    )
    assert "Open the UI: /env/bin/mlflow ui --backend-store-uri sqlite:////p/mlflow.db" in local
    assert "Not registered" in local


def test_printed_commands_name_make_targets_in_a_checkout_and_full_paths_elsewhere(tmp_path):
    from tabular_pipeline.orchestration.report import printed_commands

    (tmp_path / "Makefile").write_text("")
    venv_python = tmp_path / ".venv" / "bin" / "python"
    serve, ui = printed_commands("sqlite:///mlflow.db", "models:/m@production", tmp_path, venv_python)
    assert serve == f"make -C {tmp_path} serve MODEL_URI=models:/m@production" and ui.startswith(
        f"make -C {tmp_path} ui "
    )
    serve, ui = printed_commands("sqlite:////elsewhere.db", "models:/m@production", tmp_path, venv_python)
    assert serve.endswith("TRACKING_URI=sqlite:////elsewhere.db")
    assert ui.startswith(f"make -C {tmp_path} ui TRACKING_URI=sqlite:////elsewhere.db")
    serve, ui = printed_commands(
        "http://h:5000", "models:/m@production", tmp_path / "clone", Path("/opt/env/bin/python")
    )
    assert serve == (
        'env PATH=/opt/env/bin:"$PATH" MLFLOW_TRACKING_URI=http://h:5000 /opt/env/bin/mlflow models serve '
        "-m models:/m@production --port 5001 --env-manager local"
    )
    assert ui == "http://h:5000/#/experiments/0?workflowType=machine_learning", "the model-training view"


def test_a_password_in_the_tracking_uri_is_never_printed():
    from tabular_pipeline.orchestration.report import printed_commands
    from tabular_pipeline.orchestration.step_runs import run_page_url, shown_uri

    for uri in ("postgresql://mlflow:s3cret@db:5432/mlflow", "https://alice:s3cret@mlflow.example.com"):
        serve, ui = printed_commands(uri, "models:/m@production", Path("/clone"), Path("/opt/env/bin/python"), "7")
        assert "s3cret" not in serve + ui and "MLFLOW_TRACKING_URI set as for this run" in serve
        assert "s3cret" not in run_page_url(uri, "7", "r1") and "s3cret" not in shown_uri(uri)
    assert run_page_url("https://alice:s3cret@mlflow.example.com", "7", "r1").startswith(
        "https://mlflow.example.com/#/"
    )


def test_make_targets_never_echo_a_password_and_pass_the_uri_unchanged(tmp_path):
    """`make serve/ui/run` with a password (and shell metacharacters) in MLFLOW_TRACKING_URI: make
    prints no recipe line, and MLflow gets the URI exactly (a stand-in `mlflow` records it)."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    scripts = tmp_path / "venv" / "bin"
    scripts.mkdir(parents=True)
    (scripts / ".installed").touch()  # newer than the requirements: nothing to install
    (scripts / "mlflow").write_text('#!/bin/sh\nprintf "%s\\n" "$MLFLOW_TRACKING_URI" "$@" > "$RECORD"\n')
    (scripts / "mlflow").chmod(0o755)
    uri = "postgresql://alice:s3&c;r$e't@db:5432/mlflow"
    for target in ("serve", "ui", "run"):
        record = tmp_path / f"{target}.txt"
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MLFLOW_TRACKING_URI": uri, "RECORD": str(record)}
        result = subprocess.run(
            ["make", "-C", str(root), target, f"VENV={tmp_path / 'venv'}"], env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        assert "s3&c" not in result.stdout + result.stderr, target
        recorded = record.read_text().splitlines()
        assert recorded[0] == uri if target != "ui" else uri in recorded, (target, recorded)
    assert os.environ.get("MLFLOW_TRACKING_URI") != uri
