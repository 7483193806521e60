"""Entry point `reproduce`: rerun the training behind a model version from what it records, and
report whether the test metrics match."""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import click

from tabular_pipeline.errors import PipelineError, one_line
from tabular_pipeline.orchestration.fingerprints import code_version
from tabular_pipeline.orchestration.report import absolute_store_uri
from tabular_pipeline.orchestration.step_runs import TAG_CODE_VERSION, TAG_ENTRY_POINT, run_step
from tabular_pipeline.orchestration.workflow import parent_env_manager
from tabular_pipeline.parameters.entry_points import entry_point_options
from tabular_pipeline.paths import PROJECT_DIR
from tabular_pipeline.registry.evidence import training_run_of
from tabular_pipeline.registry.lineage import (
    TRAINING_ENTRY_POINTS,
    check_tolerance,
    compare_metrics,
    declared_parameters,
    is_clean_commit,
    recorded_parameter,
)
from tabular_pipeline.registry.model_uris import resolve_registered_model

log = logging.getLogger("reproduce")


def code_to_run(recorded: str, current: str) -> tuple[str | None, bool]:
    """Which git version to run (None: this checkout) and whether it is exactly the recorded code."""
    if recorded == current:
        return None, True
    if is_clean_commit(recorded):
        return recorded, True
    return None, False


@contextmanager
def checkout_at(project_dir: Path, commit: str | None):
    """The project folder to rerun in: this one, or a throwaway clone at `commit`.

    `mlflow.projects.run(<local folder>, version=...)` would check the commit out in the caller's
    own repository; a clone that shares its objects costs a second and leaves the caller's HEAD
    and files alone.
    """
    if commit is None:
        yield project_dir
        return
    with tempfile.TemporaryDirectory(prefix="reproduce-") as scratch:
        clone = Path(scratch) / project_dir.name
        for command in (
            ["git", "clone", "--quiet", "--shared", "--no-checkout", str(project_dir), str(clone)],
            ["git", "-C", str(clone), "checkout", "--quiet", "--detach", commit],
        ):
            done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
            if done.returncode != 0:
                reason = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
                raise PipelineError(
                    f"could not check out the recorded commit {commit} in a scratch clone ({reason}); expected it "
                    "in this repository's history"
                )
        yield clone


def reproduce_model(model_uri: str, tolerance: float, run) -> None:
    """Rerun the training of `model_uri` with its recorded parameters, code and data; compare metrics."""
    import mlflow
    import yaml
    from mlflow import MlflowClient
    from mlflow.exceptions import ExecutionException

    tolerance = check_tolerance(tolerance)
    client = MlflowClient()
    source_uri = resolve_registered_model(client, model_uri.strip())
    original = training_run_of(client, source_uri)
    entry_point = original.data.tags.get(TAG_ENTRY_POINT, "")
    if entry_point not in TRAINING_ENTRY_POINTS:
        raise PipelineError(
            f"{model_uri} was not trained by this project (entry point {entry_point!r}); expected train_basic or "
            "train_automl"
        )
    recorded_code = original.data.tags.get(TAG_CODE_VERSION, "")
    version, exact_code = code_to_run(recorded_code, code_version(PROJECT_DIR))
    if not exact_code:
        log.warning(
            "the recorded code %s had uncommitted changes and cannot be checked out; rerunning with this checkout",
            recorded_code or "(unknown)",
        )
    mlflow.set_tags(
        {
            "reproduce.model_uri": model_uri,
            "reproduce.original_run_id": original.info.run_id,
            "reproduce.exact_code": str(exact_code).lower(),
        }
    )
    env_manager = parent_env_manager(client.get_run(run.info.run_id).data.tags)
    # The rerun runs in another folder: a relative store URI (sqlite:///mlflow.db) must still name this one.
    os.environ["MLFLOW_TRACKING_URI"] = absolute_store_uri(mlflow.get_tracking_uri(), Path.cwd())
    with checkout_at(PROJECT_DIR, version) as project:
        # The parameters the recorded code declares, from its own MLproject.
        declared = declared_parameters(yaml.safe_load((project / "MLproject").read_text()), entry_point)
        parameters = {name: recorded_parameter(v) for name, v in original.data.params.items() if name in declared}
        log.info(
            "rerunning %s of run %s at %s with %s",
            entry_point,
            original.info.run_id,
            version or "this checkout",
            parameters,
        )
        try:
            # MLflow's per-run folder, which it never removes, goes with this one.
            with tempfile.TemporaryDirectory(prefix="mlflow-run-", ignore_cleanup_errors=True) as storage:
                submitted = mlflow.projects.run(
                    str(project),
                    entry_point=entry_point,
                    parameters=parameters,
                    experiment_id=run.info.experiment_id,
                    env_manager=env_manager,
                    storage_dir=storage,
                )
        except ExecutionException as error:
            raise PipelineError(
                f"the rerun of {entry_point} failed ({one_line(error, 200)}); expected the recorded code and data to "
                "train again (see the rerun's own log above)"
            ) from None
    rerun = client.get_run(submitted.run_id)
    match, lines = compare_metrics(original.data.metrics, rerun.data.metrics, tolerance)
    for line in lines:
        log.info("%s", line)
    mlflow.log_dict(
        {"original_run_id": original.info.run_id, "rerun_run_id": rerun.info.run_id, "comparison": lines},
        "reproduce/comparison.json",
    )
    mlflow.set_tags({"reproduce.rerun_run_id": rerun.info.run_id, "reproduce.match": str(match).lower()})
    if not match:
        different = "; ".join(line for line in lines if line.endswith("DIFFERENT")) or "no test metrics to compare"
        raise PipelineError(
            f"the rerun does not reproduce {model_uri}: {different}; expected every test metric within "
            f"tolerance={tolerance:g}"
        )
    log.info("reproduced %s: every test metric matches (rerun %s)", model_uri, rerun.info.run_id)


# Help lines for `--help`; names, types and defaults come from MLproject.
HELP = {
    "model_uri": "models:/<name>/<version>, models:/<name>@<alias>, or a logged model URI.",
    "tolerance": "Largest absolute metric difference still called a match.",
}


@click.command()
@entry_point_options("reproduce", HELP)
def reproduce(model_uri: str, tolerance: float) -> None:
    """Rerun the training behind a model and report whether its test metrics match."""
    run_step("reproduce", lambda run: reproduce_model(model_uri, tolerance, run))


if __name__ == "__main__":
    reproduce()
