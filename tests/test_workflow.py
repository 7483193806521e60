"""Unit tests of the workflow's pure parts: input digests, env manager hand-down, summaries."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.orchestration.report import format_summary
from tabular_pipeline.orchestration.workflow import (
    BackgroundDigest,
    StepResult,
    failed_run_id,
    parent_env_manager,
    source_digest,
)


def test_source_digest_by_kind(tmp_path):
    (tmp_path / "t.csv").write_text("a,label\n1,0\n")
    assert source_digest("t.csv", tmp_path).startswith("sha256:")
    assert source_digest(str(tmp_path / "t.csv"), tmp_path) == source_digest("t.csv", tmp_path)
    assert source_digest("runs:/abc/raw", tmp_path) == "uri:runs:/abc/raw"
    assert source_digest("https://example.invalid/t.csv", tmp_path) is None
    assert source_digest("missing.csv", tmp_path) is None


def test_the_background_digest_is_the_source_digest(tmp_path):
    (tmp_path / "t.csv").write_text("a,label\n1,0\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "train.csv").write_text("a,label\n1,0\n")
    sources = ("t.csv", str(tmp_path / "folder"), "runs:/abc/raw", "https://example.invalid/t.csv", "missing.csv")
    for source in sources:
        background = BackgroundDigest(source, tmp_path)
        assert background.hashed_file == (source == "t.csv"), "a thread for a local file only"
        assert background.result() == source_digest(source, tmp_path), source


def test_a_local_file_is_hashed_from_the_moment_the_digest_is_made(tmp_path, monkeypatch):
    import threading

    from tabular_pipeline.orchestration import workflow

    (tmp_path / "t.csv").write_text("a,label\n1,0\n")
    started = threading.Event()
    monkeypatch.setattr(workflow, "source_digest", lambda _source, _project_dir: started.set() or "digest")
    background = BackgroundDigest("t.csv", tmp_path)
    assert started.wait(30), "hashing began before anyone asked for the result"
    assert background.result() == "digest"


def test_anything_but_a_local_file_is_hashed_only_when_asked_for_after_mains_checks(tmp_path, monkeypatch):
    from tabular_pipeline.orchestration import workflow

    asked = []
    monkeypatch.setattr(workflow, "source_digest", lambda source, _project_dir: asked.append(source) or "digest")
    (tmp_path / "data").mkdir()
    # An empty data_path would be the project folder itself: main refuses it before hashing anything.
    for source in ("", "data/", "~nobody-here/t.csv", "s3://bucket/t.csv", "data/*.parquet"):
        background = BackgroundDigest(source, tmp_path)
        assert not background.hashed_file and asked == [], source
        assert background.result() == background.result() == "digest" and asked == [source], "computed once"
        asked.clear()


@pytest.mark.parametrize("source", ["t.csv", "missing.csv"], ids=["on the thread", "when asked for"])
def test_an_error_hashing_is_raised_where_the_result_is_asked_for(tmp_path, monkeypatch, source):
    from tabular_pipeline.orchestration import workflow

    (tmp_path / "t.csv").write_text("a,label\n1,0\n")

    def unreadable(source, _project_dir):
        raise PipelineError(f"{source} cannot be read")

    monkeypatch.setattr(workflow, "source_digest", unreadable)
    background = BackgroundDigest(source, tmp_path)  # does not raise
    with pytest.raises(PipelineError, match=f"^{source} cannot be read$"):
        background.result()


SLOW_DIGEST = """
import sys, time
from pathlib import Path
from tabular_pipeline.orchestration import workflow

workflow.source_digest = lambda source, project_dir: time.sleep(120)
workflow.BackgroundDigest(sys.argv[1], Path("."))
print("refused before the digest was needed", flush=True)
"""


def test_a_main_refused_before_it_needs_the_digest_does_not_wait_for_the_hash(tmp_path):
    import subprocess
    import sys

    from conftest import PROJECT_DIR

    (tmp_path / "t.csv").write_text("a,label\n1,0\n")
    done = subprocess.run(
        [sys.executable, "-c", SLOW_DIGEST, str(tmp_path / "t.csv")],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,  # a thread the interpreter waits for would keep it 120 s
    )
    assert done.returncode == 0 and "refused before" in done.stdout, done.stderr[-2000:]


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
    files = "mlflow-artifacts:/3/models/m-1/artifacts"
    text = format_summary(
        results, run, "http://127.0.0.1:5000", "demo", "production", files, Path("/p"), Path("/env/bin/python")
    )
    assert "http://127.0.0.1:5000/#/experiments/3/runs/r0" in text
    assert "runs:/r1/raw  (reused" in text
    assert "test_roc_auc = 0.9700" in text
    assert "models:/demo/2, promoted: models:/demo@production" in text
    assert "Model page:  http://127.0.0.1:5000/#/models/demo/versions/2\n" in text
    assert "Open the UI: http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning" in text
    assert text.splitlines()[0] == "Pipeline finished.", "one time for the pipeline: the one main logs as it ends"
    local = format_summary(
        results[:2], run, "sqlite:///mlflow.db", "", "production", None, Path("/p"), Path("/env/bin/python")
    )
    assert "Open the UI: /env/bin/mlflow ui --backend-store-uri sqlite:////p/mlflow.db   # then open http" in local
    assert "Not registered" in local and "Model page" not in local
    # A fully reused run promoted nothing itself: the report says the earlier promotion still holds.
    reused = [*results[:2], StepResult("register", "r3", "3", "models:/demo/2", None, True, 0.0)]
    again = format_summary(
        reused, run, "http://127.0.0.1:5000", "demo", "production", files, Path("/p"), Path("/env/bin/python")
    )
    assert "Registered: models:/demo/2 by an earlier run, still promoted: models:/demo@production" in again
    assert ", promoted:" not in again and "Serve it:" in again
    rejected = StepResult(
        "register", "r3", "3", "models:/demo/2", None, True, 0.0, {"pipeline.gate_decision": "rejected"}
    )
    again = format_summary(
        [*results[:2], rejected], run, "http://127.0.0.1:5000", "demo", "production", files, Path("/p"), Path("/py")
    )
    assert "Registered: models:/demo/2 by an earlier run, but NOT promoted to 'production'" in again


def test_no_serve_line_when_the_store_cannot_reach_the_models_files():
    """A model whose files a tracking server keeps, reported by a run on a SQLite store (the
    README's notebook after its orchestrator example, once): one line saying why, no serve line."""
    run = SimpleNamespace(info=SimpleNamespace(experiment_id="3", run_id="r0"))
    rejected = StepResult(
        "register", "r3", "3", "models:/demo/2", None, False, 1.0, {"pipeline.gate_decision": "rejected"}
    )
    promoted = StepResult("register", "r3", "3", "models:/demo/2", None, False, 1.0)
    on_server = "mlflow-artifacts:/1/models/m-9/artifacts"
    for result, label in ((rejected, "Serve the current one:"), (promoted, "Serve it:")):
        text = format_summary(
            [result], run, "sqlite:////p/mlflow.db", "demo", "production", on_server, Path("/p"), Path("/e/bin/python")
        )
        assert label not in text
        assert "No serve line: the files of models:/demo@production are kept by a tracking server" in text
        assert "TRACKING_URI=<that server's http:// URI>" in text
        served = format_summary(
            [result], run, "http://h:5000", "demo", "production", on_server, Path("/p"), Path("/e/bin/python")
        )
        assert label in served and "No serve line" not in served
        local = format_summary(
            [result],
            run,
            "sqlite:////p/mlflow.db",
            "demo",
            "production",
            "/p/mlruns/1/models/m-9/artifacts",
            Path("/p"),
            Path("/e/bin/python"),
        )
        assert label in local
    nothing = format_summary(
        [rejected], run, "sqlite:////p/mlflow.db", "demo", "production", None, Path("/p"), Path("/e/bin/python")
    )
    assert "No serve line: no version holds 'production' yet" in nothing


def test_links_and_the_ui_line_use_the_chosen_ui_port(tmp_path, monkeypatch):
    from tabular_pipeline.orchestration.report import printed_commands
    from tabular_pipeline.orchestration.step_runs import (
        UI_PORT_ENV,
        experiment_page_url,
        model_version_page_url,
        run_page_url,
        ui_port,
    )

    monkeypatch.setenv(UI_PORT_ENV, "5602")
    assert run_page_url("sqlite:///x.db", "1", "r").startswith("http://127.0.0.1:5602/#/experiments/1/runs/r")
    assert experiment_page_url("sqlite:///x.db", "1").startswith("http://127.0.0.1:5602/")
    assert model_version_page_url("sqlite:///x.db", "a b", "3") == "http://127.0.0.1:5602/#/models/a%20b/versions/3"
    assert run_page_url("http://h:5000", "1", "r").startswith("http://h:5000/"), "a server's own address stays"
    (tmp_path / "Makefile").write_text("")
    _, ui = printed_commands("sqlite:///mlflow.db", "models:/m@production", tmp_path, tmp_path / ".venv/bin/python")
    assert ui.startswith(f"make -C {tmp_path} ui UI_PORT=5602   # then open http://127.0.0.1:5602/#/experiments/0")
    _, ui = printed_commands("sqlite:////s.db", "models:/m@production", tmp_path, Path("/opt/env/bin/python"))
    assert ui.startswith("/opt/env/bin/mlflow ui --backend-store-uri sqlite:////s.db --port 5602   # then open ")
    monkeypatch.setenv(UI_PORT_ENV, "56o2")
    with pytest.raises(PipelineError, match=f"{UI_PORT_ENV}='56o2' is not a port; expected a number from 1 to 65535"):
        ui_port()


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
        'env PATH=/opt/env/bin:"$PATH" MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false MLFLOW_TRACKING_URI=http://h:5000 '
        '/opt/env/bin/mlflow models serve -m models:/m@production --port "${PORT:-5001}" --env-manager local'
    ), "the port make serve would take (PORT, else 5001), and no progress bar per file"
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


def test_make_run_hands_the_ui_port_to_the_pipeline(tmp_path):
    """`make run UI_PORT=5602` puts the port where the steps read it (a stand-in `mlflow` records it)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    scripts = tmp_path / "venv" / "bin"
    scripts.mkdir(parents=True)
    (scripts / ".installed").touch()
    (scripts / "mlflow").write_text('#!/bin/sh\nprintf "%s\\n" "$TABULAR_PIPELINE_UI_PORT" > "$RECORD"\n')
    (scripts / "mlflow").chmod(0o755)
    record = tmp_path / "port.txt"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RECORD": str(record)}
    for arguments, port in (([], "5000"), (["UI_PORT=5602"], "5602")):
        done = subprocess.run(
            ["make", "-C", str(root), "run", f"VENV={tmp_path / 'venv'}", *arguments], env=env, capture_output=True
        )
        assert done.returncode == 0, done.stderr
        assert record.read_text().strip() == port


def test_steps_main_ends_for_it_say_they_stopped_with_main_and_why(tmp_path):
    """A step that main's stop reached before the step's own handlers were in place (or a step
    killed outright) is still RUNNING when main ends it: it ends FAILED, and its error tag says it
    stopped with main and why main stopped. A run that recorded its own reason keeps it; a run that
    ended is not touched."""
    import mlflow
    from mlflow import MlflowClient

    from tabular_pipeline.orchestration.step_runs import TAG_ERROR
    from tabular_pipeline.orchestration.workflow import StepRunner

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("stopped")
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=experiment) as main_run:

            def step(tags: dict[str, str] | None = None, status: str | None = None) -> str:
                run = client.create_run(experiment, tags={"mlflow.parentRunId": main_run.info.run_id, **(tags or {})})
                if status:
                    client.set_terminated(run.info.run_id, status)
                return run.info.run_id

            silent, explained, finished = step(), step({TAG_ERROR: "terminated by SIGTERM"}), step(status="FINISHED")
            # MLflow's runner marks the step FAILED itself when main is interrupted (Ctrl-C).
            marked_by_mlflow, killed = step(status="FAILED"), step(status="KILLED")
            other = client.create_run(experiment).info.run_id  # not one of this main's steps
            runner = StepRunner(client, tmp_path, experiment, "local", "code", use_cache=True)
            runner._end_running_steps("terminated by SIGTERM")
    finally:
        mlflow.set_tracking_uri(None)
    ids = (silent, explained, finished, marked_by_mlflow, killed, other)
    runs = {run_id: client.get_run(run_id) for run_id in ids}
    assert runs[silent].info.status == "FAILED"
    assert runs[silent].data.tags[TAG_ERROR] == "stopped with main (terminated by SIGTERM)"
    assert runs[explained].info.status == "FAILED"
    assert runs[explained].data.tags[TAG_ERROR] == "terminated by SIGTERM", "its own reason is kept"
    assert runs[marked_by_mlflow].info.status == "FAILED"
    assert runs[marked_by_mlflow].data.tags[TAG_ERROR] == "stopped with main (terminated by SIGTERM)"
    assert runs[finished].info.status == "FINISHED" and TAG_ERROR not in runs[finished].data.tags
    assert runs[killed].info.status == "KILLED" and TAG_ERROR not in runs[killed].data.tags
    assert runs[other].info.status == "RUNNING" and TAG_ERROR not in runs[other].data.tags


FAKE_DOWNLOAD = """
import sys
import mlflow

with mlflow.start_run():
    mlflow.set_tags({"pipeline.output_uri": "runs:/fake/raw", "pipeline.source_digest": sys.argv[1]})
"""


def test_a_download_that_read_other_bytes_than_main_hashed_is_used_but_never_reused(tmp_path, monkeypatch, caplog):
    """The input changed between main's hash and download's read: the run's raw digest says so,
    and the run gets neither main's input digest nor a cache key (a later main cannot reuse it).
    The same step reading what main hashed gets both."""
    import os
    import sys
    from functools import partial

    import mlflow
    from mlflow import MlflowClient

    from tabular_pipeline.orchestration.step_runs import STEP_OF_MAIN_ENV, TAG_CACHE_KEY, TAG_INPUT_DIGEST
    from tabular_pipeline.orchestration.workflow import StepRunner, StepSpec, read_digest_is

    project = tmp_path / "project"
    project.mkdir()
    (project / "fake_download.py").write_text(FAKE_DOWNLOAD)
    (project / "MLproject").write_text(
        "name: fake\nentry_points:\n  download:\n    parameters:\n      raw: {type: string}\n"
        "    command: python3 fake_download.py {raw}\n"
    )
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(STEP_OF_MAIN_ENV, "1")  # the runner sets it; restored after the test
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("changed input")
    mlflow.set_tracking_uri(uri)
    hashed = "sha256:" + "a" * 64
    try:
        runner = StepRunner(client, project, experiment, "local", "code", use_cache=True)
        # The parameter is in the key too, so the second step is not the first one reused.
        specs = {
            read: StepSpec(
                "download", {"raw": read}, {"raw": read}, hashed, read_as_hashed=partial(read_digest_is, hashed)
            )
            for read in (hashed, "sha256:" + "b" * 64)
        }
        results = {read: runner.run(spec) for read, spec in specs.items()}
    finally:
        mlflow.set_tracking_uri(None)
    same, changed = (client.get_run(result.run_id).data.tags for result in results.values())
    assert same[TAG_INPUT_DIGEST] == hashed and same[TAG_CACHE_KEY] == runner.key_for(specs[hashed])
    assert TAG_INPUT_DIGEST not in changed and TAG_CACHE_KEY not in changed, "never reused under main's key"
    warnings = [r.getMessage() for r in caplog.records if r.name == "main" and r.levelname == "WARNING"]
    assert warnings == [
        f"download     read its input after it changed (main had hashed it as it started): run "
        f"{results['sha256:' + 'b' * 64].run_id} is used now and will not be reused"
    ]


def test_why_main_stopped_when_no_stop_handler_of_its_own_said():
    from mlflow.exceptions import MlflowException

    from tabular_pipeline.orchestration.workflow import stopped_by

    assert stopped_by(KeyboardInterrupt()) == "interrupted (Ctrl-C)"
    assert stopped_by(MlflowException("server gone\ndetails")) == "unexpected MlflowException: server gone"
    assert stopped_by(PipelineError("bad input")) == "bad input"


@pytest.mark.parametrize(
    ("requested", "caller_gone", "expected"),
    [
        ([], [], None),
        (["terminated"], [], "terminated by SIGTERM"),
        (["terminated"], [4242], "stopped because the process that started it (pid 4242) ended"),
        (["interrupted"], [], "interrupted (Ctrl-C)"),
    ],
)
def test_stop_message_says_how_this_process_was_stopped(monkeypatch, requested, caller_gone, expected):
    from tabular_pipeline.orchestration import step_runs

    monkeypatch.setattr(step_runs, "_STOP_REQUESTED", requested)
    monkeypatch.setattr(step_runs, "CALLER_GONE", caller_gone)
    assert step_runs.stop_message() == expected
