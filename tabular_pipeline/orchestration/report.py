"""The closing report of a pipeline: every step's run and output, the model, and commands that run as printed."""

from __future__ import annotations

from pathlib import Path

from tabular_pipeline.orchestration.step_runs import (
    experiment_page_url,
    has_credentials,
    run_page_url,
)
from tabular_pipeline.orchestration.workflow import StepResult


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
    if has_credentials(store):
        # A password in the tracking URI is never printed: the commands take it from the environment.
        return printed_commands_from_environment(model_uri, project_dir, python, page, remote)
    if (project_dir / "Makefile").is_file() and python.parent == project_dir / ".venv" / "bin":
        default_store = f"sqlite:///{project_dir / 'mlflow.db'}"
        store_arg = "" if store == default_store else f" TRACKING_URI={shlex.quote(store)}"
        make = f"make -C {shlex.quote(str(project_dir))}"
        serve = f"{make} serve MODEL_URI={shlex.quote(model_uri)}{store_arg}"
        ui = page if remote else f"{make} ui{store_arg}   # then open {page}"
        return serve, ui
    scripts = python.parent
    path = f'PATH={shlex.quote(str(scripts))}:"$PATH"'
    serve = (
        f"env {path} MLFLOW_TRACKING_URI={shlex.quote(store)} {shlex.quote(str(scripts / 'mlflow'))} models serve "
        f"-m {shlex.quote(model_uri)} --port 5001 --env-manager local"
    )
    ui = (
        page
        if remote
        else f"{shlex.quote(str(scripts / 'mlflow'))} ui --backend-store-uri {shlex.quote(store)}   (then {page})"
    )
    return serve, ui


def printed_commands_from_environment(model_uri: str, project_dir: Path, python: Path, page: str, remote: bool):
    """The serve and UI commands for a tracking URI with credentials in it: they read it from
    `MLFLOW_TRACKING_URI`, set in the shell as it was for this run."""
    import shlex

    note = "   # with MLFLOW_TRACKING_URI set as for this run"
    if (project_dir / "Makefile").is_file() and python.parent == project_dir / ".venv" / "bin":
        make = f"make -C {shlex.quote(str(project_dir))}"
        serve = f"{make} serve MODEL_URI={shlex.quote(model_uri)}{note}"
        ui = page if remote else f"{make} ui{note}, then open {page}"
        return serve, ui
    scripts = python.parent
    mlflow_path = shlex.quote(str(scripts / "mlflow"))
    serve = (
        f'env PATH={shlex.quote(str(scripts))}:"$PATH" {mlflow_path} models serve -m {shlex.quote(model_uri)} '
        f"--port 5001 --env-manager local{note}"
    )
    ui = page if remote else f'{mlflow_path} ui --backend-store-uri "$MLFLOW_TRACKING_URI"{note}, then open {page}'
    return serve, ui


def format_summary(
    results: list[StepResult],
    main_run,
    tracking_uri: str,
    model_name: str,
    alias: str,
    seconds: float,
    project_dir: Path,
    python: Path,
) -> str:
    """The closing report: every step's run and output, the model version, and where to look."""
    lines = [
        f"Pipeline finished in {seconds:.1f} s.",
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
    serve, ui = printed_commands(
        tracking_uri, f"models:/{model_name}@{alias}", project_dir, python, main_run.info.experiment_id
    )
    if registered and registered.tags.get("pipeline.gate_decision") == "rejected":
        reason = registered.tags.get("pipeline.gate_reason", "")
        lines.append(f"Registered: {registered.output_uri}, but NOT promoted to '{alias}': {reason}")
        lines.append(f"Serve the current one: {serve}")
    elif registered:
        lines.append(f"Registered: {registered.output_uri}, promoted: models:/{model_name}@{alias}")
        lines.append(f"Serve it:    {serve}")
    else:
        lines.append("Not registered: model_name is empty.")
    lines.append(f"Open the UI: {ui}")
    return "\n".join(lines)
