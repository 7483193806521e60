"""Entry point `main`: download -> process -> train_basic | train_automl -> register.

Each step runs as its own MLflow project run, nested under this one; steps hand each other run
and model URIs only. A finished step is reused when its entry point, normalised parameters, code
version and input data digest all match (`-P use_cache=false` turns that off).
"""

from __future__ import annotations

# Standard library only: on a Python without the project's packages, it reruns main on the Python
# that launched it (or explains in one line) before the imports below could fail.
from tabular_pipeline.interpreter import ensure_project_interpreter

ensure_project_interpreter()

import logging
import os
import sys
import time
from functools import partial
from pathlib import Path

import click

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.orchestration.fingerprints import code_version
from tabular_pipeline.orchestration.step_runs import (
    STEP_RESOURCE_METRICS,
    TAG_CODE_VERSION,
    TAG_OUTPUT_URI,
    run_name_tag,
    run_step,
)
from tabular_pipeline.orchestration.workflow import (
    StepRunner,
    StepSpec,
    format_summary,
    parent_env_manager,
    source_digest,
)
from tabular_pipeline.parameters.entry_points import entry_point_options
from tabular_pipeline.parameters.hyperparameters import validate_hyperparameters
from tabular_pipeline.parameters.strings import (
    MAX_PARAM_STRING_LENGTH,
    format_param_string,
    parse_extra_options,
    parse_param_file,
    parse_param_string,
)
from tabular_pipeline.registry.gate import parse_min_score
from tabular_pipeline.registry.registration import validate_alias, validate_model_name
from tabular_pipeline.training.automl import check_tool

PROJECT_DIR = Path(__file__).resolve().parent
log = logging.getLogger("main")


def read_param_file(path_text: str) -> dict:
    """The parameters in DolphinScheduler's `param_file` (one `name=value` per line), {} if unset."""
    if not path_text.strip():
        return {}
    path = Path(path_text.strip()).expanduser()
    path = path if path.is_absolute() else PROJECT_DIR / path
    if not path.is_file():
        raise PipelineError(
            f"param_file {str(path)!r} does not exist; expected a text file with one name=value per line"
        )
    if path.stat().st_size > MAX_PARAM_STRING_LENGTH:
        raise PipelineError(
            f"param_file {path} is {path.stat().st_size} bytes; at most {MAX_PARAM_STRING_LENGTH} are allowed"
        )
    try:
        return parse_param_file(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise PipelineError(f"param_file {path} is not UTF-8 text; expected one name=value per line") from None


def collect_hyperparameters(
    params: str, search_params: str, extra_args: list[str], param_file: str = ""
) -> tuple[dict, dict, set[str]]:
    """Parse `param_file`, `params`, `search_params` and undeclared `--name value` overrides.

    Later sources win: the file, then `params`, then the overrides.

    Returns:
        (fixed parameters including overrides, search parameters, names whose values came from the file).
    """
    fixed = read_param_file(param_file)
    from_file = set(fixed)
    given = parse_param_string(params, "params")
    given.update(parse_extra_options(extra_args))
    fixed.update(given)
    return fixed, parse_param_string(search_params, "search_params"), from_file - set(given)


def hand_over_source(data_path: str) -> str:
    """The source to pass to `download` as a parameter: a presigned URL loses its query string
    there (MLflow records every parameter), and travels to the step in the environment instead."""
    import os

    from tabular_pipeline.data.uris import SIGNED_SOURCE_ENV, redact_source

    recorded = redact_source(data_path)
    if recorded != data_path:
        os.environ[SIGNED_SOURCE_ENV] = data_path
    return recorded


def promoted_by(client, alias: str, register_run) -> bool:
    """Whether an earlier register run's promotion is still in place."""
    from tabular_pipeline.registry.registration import promotion_still_current

    return promotion_still_current(client, register_run.data.tags.get(TAG_OUTPUT_URI, ""), alias)


def check_input_exists(data_path: str) -> None:
    """Refuse, before any step runs, a URL with credentials or a local table that is not there."""
    from tabular_pipeline.data.uris import check_no_credentials, local_path, source_kind

    check_no_credentials(data_path)
    if not data_path:
        raise PipelineError("data_path is empty; expected a .csv file, a folder with train.csv and test.csv, or a URI")
    if source_kind(data_path) == "local" and not local_path(data_path, PROJECT_DIR).exists():
        raise PipelineError(
            f"data_path {local_path(data_path, PROJECT_DIR)} does not exist; expected a .csv or .parquet file "
            "or a folder with train.csv and test.csv (relative paths are read from the project folder)"
        )


def pipeline_name(options: dict, train_entry_point: str) -> str:
    """The main run's name in the UI, e.g. `main: lightgbm on breast_cancer.csv`."""
    from tabular_pipeline.data.uris import redact_source

    what = (
        options["tool"].strip().lower() if train_entry_point == "train_automl" else options["algorithm"].strip().lower()
    )
    table = redact_source(options["data_path"].strip()).rstrip("/").rsplit("/", 1)[-1] or "data"
    return f"main: {what.strip().lower()} on {table}"[:250]


def check_training_choice(options: dict, fixed: dict, search: dict, unechoed: set[str]) -> str:
    """Validate the algorithm or AutoML tool, and hyperparameter names, before any step runs.

    AutoML tools search their own spaces, so a `search_params` for them is refused rather than
    silently dropped.
    """
    from tabular_pipeline.training.algorithms import allowed_hyperparameters, normalise_algorithm

    tool = options["tool"].strip().lower().replace("-", "")
    if tool:
        from tabular_pipeline.training.automl.autosklearn_search import check_autosklearn_params
        from tabular_pipeline.training.automl.flaml_search import check_flaml_params

        tool = check_tool(tool)
        if search:
            raise PipelineError(
                f"search_params is not used by the AutoML tool {tool} ({', '.join(search)}); expected it empty: "
                "the tool searches its own space within time_budget (restrict it with params, e.g. estimator_list "
                "for flaml)"
            )
        if tool == "flaml":
            check_flaml_params(fixed, unechoed)
        else:
            check_autosklearn_params(fixed, options["time_budget"], unechoed)
        return "train_automl"
    algorithm = normalise_algorithm(options["algorithm"])
    if fixed or search:
        # Only then: building the estimators to list their parameters imports the library (1.5 s for LightGBM).
        # The task is known only after `process`; any name valid for either task passes here.
        allowed = {**allowed_hyperparameters(algorithm, "regression"), **allowed_hyperparameters(algorithm, "binary")}
        validate_hyperparameters({**fixed, **search}, allowed, algorithm, unechoed - set(search))
    return "train_basic"


def training_spec(
    entry_point: str, options: dict, fixed: dict, search: dict, data_uri: str, data_digest: str | None
) -> StepSpec:
    """The train step's parameters; the data URI is left out of its cache key (its digest counts)."""
    if entry_point == "train_automl":
        key_params = {
            "tool": check_tool(options["tool"]),
            "params": format_param_string(fixed),
            "label_column": options["label_column"],
            "time_budget": options["time_budget"],
            "task": options["task"],
            "seed": options["seed"],
            "test_size": options["test_size"],
        }
    else:
        from tabular_pipeline.training.algorithms import normalise_algorithm

        key_params = {
            "algorithm": normalise_algorithm(options["algorithm"]),
            "params": format_param_string(fixed),
            "search_params": format_param_string(search),
            "label_column": options["label_column"],
            "task": options["task"],
            "seed": options["seed"],
            "cv": options["cv"],
            "test_size": options["test_size"],
        }
    run_params = {"n_jobs": options["n_jobs"]} if entry_point == "train_basic" else {}
    # n_jobs changes how fast the search runs, not what it finds, so it stays out of the cache key.
    return StepSpec(entry_point, {"data_path": data_uri, **key_params, **run_params}, key_params, data_digest)


def run_pipeline(options: dict, extra_args: list[str], run) -> None:
    """Run (or reuse) every step in order and print where the results are."""
    import mlflow
    from mlflow import MlflowClient

    started = time.monotonic()
    client = MlflowClient()
    fixed, search, from_file = collect_hyperparameters(
        options["params"], options["search_params"], extra_args, options["param_file"]
    )
    train_entry_point = check_training_choice(options, fixed, search, from_file)
    check_input_exists(options["data_path"].strip())
    model_name = validate_model_name(options["model_name"]) if options["model_name"].strip() else ""
    alias = validate_alias(options["alias"].strip())
    parse_min_score(options["min_score"])  # fail before training, not after it
    run_tags = client.get_run(run.info.run_id).data.tags
    env_manager = parent_env_manager(run_tags)
    if "mlflow.runName" in run_name_tag(run.info.run_name, "main"):
        mlflow.set_tag("mlflow.runName", pipeline_name(options, train_entry_point))
    code = code_version(PROJECT_DIR)
    mlflow.set_tags(
        {
            TAG_CODE_VERSION: code,
            "pipeline.env_manager": env_manager,
            "pipeline.use_cache": str(options["use_cache"]).lower(),
        }
    )
    log.info("code %s, env manager %s, cache %s", code, env_manager, "on" if options["use_cache"] else "off")
    if env_manager == "local":
        # Steps start as `python -m ...` from PATH: make that this Python, whoever launched main.
        os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    runner = StepRunner(client, PROJECT_DIR, run.info.experiment_id, env_manager, code, options["use_cache"])

    data_path = options["data_path"].strip()
    download = runner.run(
        StepSpec("download", {"source": hand_over_source(data_path)}, {}, source_digest(data_path, PROJECT_DIR))
    )
    split_params = {
        "label_column": options["label_column"],
        "test_size": options["test_size"],
        "seed": options["seed"],
        "task": options["task"],
    }
    process = runner.run(
        StepSpec("process", {"data_path": download.output_uri, **split_params}, split_params, download.output_digest)
    )
    train = runner.run(
        training_spec(train_entry_point, options, fixed, search, process.output_uri, process.output_digest)
    )
    results = [download, process, train]
    if model_name:
        register_params = {
            "model_uri": train.output_uri,
            "model_name": model_name,
            "alias": alias,
            "min_score": options["min_score"],
            "min_delta": options["min_delta"],
            "force": str(options["force"]).lower(),
        }
        # A logged model's URI never changes content, so it is the register step's input digest;
        # its run is reused only while the version it promoted still holds the alias.
        still_promoted = partial(promoted_by, client, alias)
        results.append(
            runner.run(
                StepSpec("register", register_params, register_params, train.output_uri, still_valid=still_promoted)
            )
        )
    else:
        log.info("%-12s skipped  (model_name is empty)", "register")

    mlflow.set_tags(
        {
            **{f"pipeline.step.{r.entry_point}": f"{r.run_id} ({'reused' if r.reused else 'ran'})" for r in results},
            "pipeline.steps_reused": str(sum(r.reused for r in results)),
        }
    )
    # One batch: the training step's scores, and how long each step took here (reused ones: the lookup).
    step_times = {f"{r.entry_point}_seconds": r.seconds for r in results}
    mlflow.log_metrics({**{k: v for k, v in train.metrics.items() if k not in STEP_RESOURCE_METRICS}, **step_times})
    summary = format_summary(
        results,
        run,
        mlflow.get_tracking_uri(),
        model_name,
        alias,
        time.monotonic() - started,
        PROJECT_DIR,
        Path(sys.executable),
    )
    click.echo(summary)


# Help lines for `--help`; names, types and defaults come from MLproject.
HELP = {
    "algorithm": "lr, svm, lightgbm or xgboost (any case).",
    "tool": "flaml or autosklearn; when given, AutoML replaces --algorithm.",
    "data_path": "A .csv file, a folder with train.csv and test.csv, or a URI.",
    "label_column": "The target column.",
    "params": "Hyperparameters: name=value;name=value.",
    "search_params": "Search space: name=[v1, v2];...",
    "model_name": "Registered model name; empty means don't register.",
    "alias": "Alias.",
    "task": "auto, binary, multiclass or regression.",
    "test_size": "Test size.",
    "seed": "Seed.",
    "cv": "Cv.",
    "time_budget": "AutoML budget in seconds.",
    "use_cache": "Reuse finished steps whose inputs match.",
    "min_score": "Gate: minimum primary metric (maximum for RMSE); empty for none.",
    "min_delta": "Gate: how much a new version must beat production by.",
    "force": "Gate: promote whatever the scores say.",
    "n_jobs": "Parallel fits during a search.",
    "param_file": "A file of name=value lines (DolphinScheduler's preset); params win over it.",
}


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@entry_point_options("main", HELP)
@click.pass_context
def main(ctx: click.Context, **options) -> None:
    """Run the whole pipeline. Undeclared `-P name=value` pairs arrive as `--name value` and are
    taken as hyperparameter overrides."""
    run_step("main", lambda run: run_pipeline(options, list(ctx.args), run))


if __name__ == "__main__":
    main()
