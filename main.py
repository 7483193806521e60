"""Entry point `main`: download -> process -> train_basic | train_automl -> register.

Each step runs as its own MLflow project run, nested under this one; steps hand each other run
and model URIs only. A finished step is reused when its entry point, normalised parameters, code
version and input data digest all match (`-P use_cache=false` turns that off).
"""

from __future__ import annotations

# Standard library only: on a Python without the project's packages, it reruns main on the Python
# that launched it (or explains in one line) before the imports below could fail; and the process
# ends without the interpreter's last garbage collection (`tabular_pipeline.process_exit`).
from tabular_pipeline.interpreter import ensure_project_interpreter
from tabular_pipeline.process_exit import skip_final_collection

ensure_project_interpreter()
skip_final_collection("main")

import logging
import os
import sys
import time
from functools import partial
from pathlib import Path

import click

from tabular_pipeline.engines import check_engine
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.orchestration.fingerprints import code_version
from tabular_pipeline.orchestration.pipeline_inputs import (
    check_input_exists,
    check_spark_input,
    check_training_choice,
    collect_hyperparameters,
    hand_over_source,
    is_glob,
    pipeline_name,
    spark_splits_exist,
    training_spec,
)
from tabular_pipeline.orchestration.report import format_summary, model_files_location
from tabular_pipeline.orchestration.step_runs import STEP_RESOURCE_METRICS, TAG_CODE_VERSION, run_step, ui_port
from tabular_pipeline.orchestration.workflow import (
    BackgroundDigest,
    StepRunner,
    StepSpec,
    parent_env_manager,
    read_digest_is,
)
from tabular_pipeline.parameters.entry_points import entry_point_options
from tabular_pipeline.registry.gate_rule import parse_min_score
from tabular_pipeline.registry.registration import validate_alias, validate_model_name
from tabular_pipeline.spark.session import check_master

PROJECT_DIR = Path(__file__).resolve().parent
log = logging.getLogger("main")


def register_outcome_stands(client, alias: str, register_run) -> bool:
    """Whether an earlier register run's promotion or rejection still stands."""
    from tabular_pipeline.registry.registration import register_run_still_current

    return register_run_still_current(client, register_run.data.tags, alias)


def run_pipeline(options: dict, extra_args: list[str], run, input_digest: BackgroundDigest) -> None:
    """Run (or reuse) every step in order and print where the results are; `input_digest` is the
    digest of `data_path`, started before MLflow was imported."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag

    client = MlflowClient()
    ui_port()  # the links' port, refused here in one line when it is not a port
    fixed, search, from_file = collect_hyperparameters(
        options["params"], options["search_params"], extra_args, options["param_file"]
    )
    engine = check_engine(options["engine"])
    options = {**options, "engine": engine}
    if engine == "spark":
        check_master(options["spark_master"])
    elif options["split_path"].strip():
        raise PipelineError("split_path is used only with -P engine=spark; expected it empty for the pandas engine")
    train_entry_point = check_training_choice(options, fixed, search, from_file)
    if engine == "spark":
        check_spark_input(options["data_path"].strip())
    else:
        check_input_exists(options["data_path"].strip())
    model_name = validate_model_name(options["model_name"]) if options["model_name"].strip() else ""
    alias = validate_alias(options["alias"].strip())
    parse_min_score(options["min_score"])  # fail before training, not after it
    # The tags `mlflow run` set before main started, as `start_run` fetched them.
    env_manager = parent_env_manager(run.data.tags)
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
        # Steps start as `python3 -m ...` from PATH: make that this Python, whoever launched main.
        os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    runner = StepRunner(client, PROJECT_DIR, run.info.experiment_id, env_manager, code, options["use_cache"])

    data_path = options["data_path"].strip()
    split_params = {
        "label_column": options["label_column"],
        "test_size": options["test_size"],
        "seed": options["seed"],
        "task": options["task"],
    }
    if engine == "spark":
        # The cluster reads the table where it is: nothing is copied into the tracking server.
        log.info("%-12s skipped  (engine=spark reads data_path where it is)", "download")
        # The master is in the key: where the splits are written (and who can read them) depends on it.
        spark_params = {
            **split_params,
            "engine": engine,
            "split_path": options["split_path"],
            "spark_master": options["spark_master"],
        }
        process = runner.run(
            StepSpec(
                "process",
                {"data_path": data_path, **spark_params},
                spark_params,
                None if is_glob(data_path) else input_digest.result(),
                still_valid=spark_splits_exist,
            )
        )
        results = [process]
    else:
        digest = input_digest.result()
        # A local source (a `sha256:` digest) must be what download read, or its run is not reused.
        read_as_hashed = partial(read_digest_is, digest) if digest and digest.startswith("sha256:") else None
        download = runner.run(
            StepSpec("download", {"source": hand_over_source(data_path)}, {}, digest, read_as_hashed=read_as_hashed)
        )
        process = runner.run(
            StepSpec(
                "process", {"data_path": download.output_uri, **split_params}, split_params, download.output_digest
            )
        )
        results = [download, process]
    train = runner.run(
        training_spec(train_entry_point, options, fixed, search, process.output_uri, process.output_digest)
    )
    results.append(train)
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
        # its run is reused only while its outcome stands (the alias where the gate left it).
        outcome_stands = partial(register_outcome_stands, client, alias)
        results.append(
            runner.run(
                StepSpec("register", register_params, register_params, train.output_uri, still_valid=outcome_stands)
            )
        )
    else:
        log.info("%-12s skipped  (model_name is empty)", "register")

    step_tags = {
        **{f"pipeline.step.{r.entry_point}": f"{r.run_id} ({'reused' if r.reused else 'ran'})" for r in results},
        "pipeline.steps_reused": str(sum(r.reused for r in results)),
    }
    # One request: which run did each step, the training step's scores, and how long each step
    # took here (reused ones: the lookup).
    step_times = {f"{r.entry_point}_seconds": r.seconds for r in results}
    metrics = {**{k: v for k, v in train.metrics.items() if k not in STEP_RESOURCE_METRICS}, **step_times}
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(key, value, now, 0) for key, value in metrics.items()],
        tags=[RunTag(key, value) for key, value in step_tags.items()],
    )
    summary = format_summary(
        results,
        run,
        mlflow.get_tracking_uri(),
        model_name,
        alias,
        model_files_location(client, model_name, alias) if model_name else None,
        PROJECT_DIR,
        Path(sys.executable),
    )
    click.echo(summary)


# Help lines for `--help`; names, types and defaults come from MLproject.
HELP = {
    "algorithm": "lr, svm, lightgbm or xgboost (any case).",
    "tool": "flaml, autogluon or autosklearn; when given, AutoML replaces --algorithm.",
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
    "engine": "pandas (one process) or spark (process and train_basic on a cluster or local session).",
    "spark_master": "With engine=spark: local[*], spark://host:port, yarn or k8s://...",
    "split_path": "With engine=spark: where the train/test Parquet go; default: the run's artifacts when "
    "Spark can write there.",
}


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@entry_point_options("main", HELP, run_name=pipeline_name)
@click.pass_context
def main(ctx: click.Context, **options) -> None:
    """Run the whole pipeline. Undeclared `-P name=value` pairs arrive as `--name value` and are
    taken as hyperparameter overrides."""
    # Hashing a local table starts now, while run_step imports MLflow.
    input_digest = BackgroundDigest(options["data_path"].strip(), PROJECT_DIR)
    run_step(
        "main",
        lambda run: run_pipeline(options, list(ctx.args), run, input_digest),
        run_name=partial(pipeline_name, options),
    )


if __name__ == "__main__":
    main()
