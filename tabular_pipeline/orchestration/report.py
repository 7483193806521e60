"""The closing report of a pipeline: every step's run and output, the model, and commands that run as printed."""

from __future__ import annotations

from pathlib import Path

from tabular_pipeline.orchestration.step_runs import (
    DEFAULT_UI_PORT,
    experiment_page_url,
    has_credentials,
    model_version_page_url,
    run_page_url,
    ui_port,
)
from tabular_pipeline.orchestration.workflow import StepResult

# The serving port of the printed serve lines: `make serve` reads PORT too, with the same default.
SERVE_PORT = '"${PORT:-5001}"'
# MLflow draws a progress bar per file while `models serve` fetches a model.
NO_PROGRESS_BARS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false"


def absolute_store_uri(tracking_uri: str, base_dir: Path) -> str:
    """A local store URI with its path made absolute (`sqlite:///mlflow.db` is relative to the
    folder a process runs in), so a printed command works from any folder."""
    for prefix in ("sqlite:///", "file://"):
        if tracking_uri.startswith(prefix) and not tracking_uri[len(prefix) :].startswith("/"):
            return prefix + str(base_dir / tracking_uri[len(prefix) :])
    if "://" not in tracking_uri and tracking_uri:
        return str(base_dir / tracking_uri)
    return tracking_uri


def printed_commands(
    tracking_uri: str, model_uri: str, project_dir: Path, python: Path, experiment_id: str = "0"
) -> tuple[str, str]:
    """The serve and UI commands to print, each runnable as printed from a plain shell.

    In a checkout set up with `make` (its `.venv` and Makefile are there), they are `make -C <checkout>
    serve` and `make -C <checkout> ui`, which put that environment on PATH. Anywhere else (a notebook, MLflow's clone of
    a git URL) they name this interpreter's scripts by full path and put them first on PATH, since
    `mlflow models serve` starts `uvicorn` from PATH.
    """
    import shlex

    store = absolute_store_uri(tracking_uri, project_dir)
    remote = store.startswith(("http://", "https://"))
    page = experiment_page_url(store, experiment_id)
    port = ui_port()
    if has_credentials(store):
        # A password in the tracking URI is never printed: the commands take it from the environment.
        return printed_commands_from_environment(model_uri, project_dir, python, page, remote)
    if is_make_checkout(project_dir, python):
        default_store = f"sqlite:///{project_dir / 'mlflow.db'}"
        store_arg = "" if store == default_store else f" TRACKING_URI={shlex.quote(store)}"
        port_arg = "" if port == DEFAULT_UI_PORT else f" UI_PORT={port}"
        make = f"make -C {shlex.quote(str(project_dir))}"
        serve = f"{make} serve MODEL_URI={shlex.quote(model_uri)}{store_arg}"
        ui = page if remote else f"{make} ui{port_arg}{store_arg}   # then open {page}"
        return serve, ui
    scripts = python.parent
    path = f'PATH={shlex.quote(str(scripts))}:"$PATH"'
    serve = (
        f"env {path} {NO_PROGRESS_BARS} MLFLOW_TRACKING_URI={shlex.quote(store)} "
        f"{shlex.quote(str(scripts / 'mlflow'))} models serve -m {shlex.quote(model_uri)} --port {SERVE_PORT} "
        "--env-manager local"
    )
    port_option = "" if port == DEFAULT_UI_PORT else f" --port {port}"
    mlflow_ui = f"{shlex.quote(str(scripts / 'mlflow'))} ui --backend-store-uri {shlex.quote(store)}{port_option}"
    ui = page if remote else f"{mlflow_ui}   # then open {page}"
    return serve, ui


def is_make_checkout(project_dir: Path, python: Path) -> bool:
    """Whether this runs in a checkout set up with `make` (its Makefile, and its .venv's Python)."""
    return (project_dir / "Makefile").is_file() and python.parent == project_dir / ".venv" / "bin"


def printed_commands_from_environment(model_uri: str, project_dir: Path, python: Path, page: str, remote: bool):
    """The serve and UI commands for a tracking URI with credentials in it: they read it from
    `MLFLOW_TRACKING_URI`, set in the shell as it was for this run."""
    import shlex

    note = "   # with MLFLOW_TRACKING_URI set as for this run"
    port = ui_port()
    if is_make_checkout(project_dir, python):
        make = f"make -C {shlex.quote(str(project_dir))}"
        serve = f"{make} serve MODEL_URI={shlex.quote(model_uri)}{note}"
        port_arg = "" if port == DEFAULT_UI_PORT else f" UI_PORT={port}"
        ui = page if remote else f"{make} ui{port_arg}{note}, then open {page}"
        return serve, ui
    scripts = python.parent
    mlflow_path = shlex.quote(str(scripts / "mlflow"))
    serve = (
        f'env PATH={shlex.quote(str(scripts))}:"$PATH" {NO_PROGRESS_BARS} {mlflow_path} models serve '
        f"-m {shlex.quote(model_uri)} --port {SERVE_PORT} --env-manager local{note}"
    )
    port_option = "" if port == DEFAULT_UI_PORT else f" --port {port}"
    mlflow_ui = f'{mlflow_path} ui --backend-store-uri "$MLFLOW_TRACKING_URI"{port_option}'
    ui = page if remote else f"{mlflow_ui}{note}, then open {page}"
    return serve, ui


def model_files_location(client, name: str, alias: str) -> str | None:
    """Where the files of the version holding `alias` are (None when no version holds it)."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, alias)
        return client.get_model_version_download_uri(name, version.version)
    except MlflowException:
        return None


def why_no_serve_line(store: str, model_uri: str, files: str | None) -> str | None:
    """Why the serve line would not serve, in one line; None when it would.

    A model whose files a tracking server keeps (`mlflow-artifacts:/...`) loads only through that
    server's http URI, never through the database it shares with it.
    """
    if files is None:
        return f"no version holds {model_uri.rsplit('@', 1)[-1]!r} yet"
    if files.startswith("mlflow-artifacts:") and not store.startswith(("http://", "https://")):
        return (
            f"the files of {model_uri} are kept by a tracking server ({files}), which this run's "
            "store cannot reach; serve it with TRACKING_URI=<that server's http:// URI>"
        )
    return None


def format_summary(
    results: list[StepResult],
    main_run,
    tracking_uri: str,
    model_name: str,
    alias: str,
    served_files: str | None,
    project_dir: Path,
    python: Path,
) -> str:
    """The closing report: every step's run and output, the model version, and where to look.

    `served_files` is where the files of the version holding `alias` are (`model_files_location`).
    The pipeline's time is the one `main` logs as it ends, not a second figure here.
    """
    lines = [
        "Pipeline finished.",
        f"  {'main':<12} {run_page_url(tracking_uri, main_run.info.experiment_id, main_run.info.run_id)}",
    ]
    for result in results:
        state = "reused" if result.reused else "ran"
        lines.append(f"  {result.entry_point:<12} {result.output_uri}  ({state}, run {result.run_id})")
    trained = next((r for r in results if r.entry_point.startswith("train")), None)
    if trained:
        primary = trained.tags.get("pipeline.primary_metric")
        if primary and primary in trained.metrics:
            lines.append(f"  {'score':<12} {primary} = {trained.metrics[primary]:.4f}")
    registered = next((r for r in results if r.entry_point == "register"), None)
    served_uri = f"models:/{model_name}@{alias}"
    serve, ui = printed_commands(tracking_uri, served_uri, project_dir, python, main_run.info.experiment_id)
    blocked = why_no_serve_line(absolute_store_uri(tracking_uri, project_dir), served_uri, served_files)
    if registered and registered.tags.get("pipeline.gate_decision") == "rejected":
        reason = registered.tags.get("pipeline.gate_reason", "")
        earlier = " by an earlier run" if registered.reused else ""
        lines.append(f"Registered: {registered.output_uri}{earlier}, but NOT promoted to '{alias}': {reason}")
        lines.append(f"Serve the current one: {serve}" if blocked is None else f"No serve line: {blocked}")
    elif registered and registered.reused:
        # Reused only while the version it promoted still holds the alias: no new promotion happened.
        lines.append(f"Registered: {registered.output_uri} by an earlier run, still promoted: {served_uri}")
        lines.append(f"Serve it:    {serve}" if blocked is None else f"No serve line: {blocked}")
    elif registered:
        lines.append(f"Registered: {registered.output_uri}, promoted: {served_uri}")
        lines.append(f"Serve it:    {serve}" if blocked is None else f"No serve line: {blocked}")
    else:
        lines.append("Not registered: model_name is empty.")
    if registered:
        version = registered.output_uri.rsplit("/", 1)[-1]
        lines.append(f"Model page:  {model_version_page_url(tracking_uri, model_name, version)}")
    lines.append(f"Open the UI: {ui}")
    return "\n".join(lines)
