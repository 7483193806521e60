"""Entry point `predict`: score a CSV or Parquet table with a model, on pandas (streaming) or Spark."""

from __future__ import annotations

import logging
import platform
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tabular_pipeline.engines import check_engine
from tabular_pipeline.errors import PipelineError, one_line
from tabular_pipeline.orchestration.step_runs import TAG_OUTPUT_URI, run_step
from tabular_pipeline.parameters.entry_points import entry_point_options
from tabular_pipeline.scoring.batch import parse_key_columns, table_format
from tabular_pipeline.scoring.engines import pandas_engine, spark_engine
from tabular_pipeline.scoring.outputs import check_output_path
from tabular_pipeline.scoring.ownership import output_record

if TYPE_CHECKING:  # numpy and pandas load only when a table is scored
    from tabular_pipeline.monitoring.monitor import ScoringMonitor

PREDICTIONS_ARTIFACT_PATH = "predictions"
# Spark reads these itself, on every executor; anything else is fetched to local disk first.
SPARK_NATIVE_SCHEMES = ("hdfs://", "s3a://", "gs://", "abfss://", "wasbs://", "dbfs:/")
# What `data_path` takes, for the error on a local path that does not exist.
SCORED_TABLE = "a .csv or .parquet file, or a folder of .csv or .parquet part files (one table)"
log = logging.getLogger("predict")


def check_model(model_uri: str):
    """Resolve and check the model before any data is read; return its `ModelInfo`."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from tabular_pipeline.registry.model_uris import resolve_registered_model
    from tabular_pipeline.registry.registration import check_model_exists

    if not model_uri.startswith(("models:/", "runs:/")):
        raise PipelineError(
            f"model_uri '{model_uri}' is not a model URI; expected models:/<name>/<version>, models:/<name>@<alias> "
            "or runs:/<run id>/<path>"
        )
    client = mlflow.MlflowClient()
    check_model_exists(client, resolve_registered_model(client, model_uri))
    try:
        info = mlflow.models.get_model_info(model_uri)
    except MlflowException as error:
        raise PipelineError(
            f"model {model_uri} could not be read ({one_line(error, 200)}); expected an MLflow model"
        ) from None
    recorded = str(info.flavors.get("python_function", {}).get("python_version", ""))
    here = platform.python_version()
    if recorded and recorded.rsplit(".", 1)[0] != here.rsplit(".", 1)[0]:
        raise PipelineError(
            f"model {model_uri} was saved under Python {recorded} and this step runs {here}; "
            f"score it in its own environment with `mlflow models predict -m {model_uri}`"
        )
    return info


def local_table(data_path: str, scratch: Path) -> Path:
    """The table as a local file or folder (fetched first when it is a URI)."""
    from tabular_pipeline.data.archives import DEFAULT_MAX_BYTES
    from tabular_pipeline.data.sources import fetch_source

    return fetch_source(
        data_path, scratch, Path.cwd(), timeout_s=60.0, max_bytes=DEFAULT_MAX_BYTES, expected=SCORED_TABLE
    )


def local_input(data_path: str) -> Path | None:
    """The input's local file or folder (relative paths are read from the project folder), or
    None when it is fetched from elsewhere."""
    from tabular_pipeline.data.uris import local_path, source_kind

    return local_path(data_path, Path.cwd()) if data_path and source_kind(data_path) == "local" else None


def data_format(path: Path) -> str:
    """ "parquet" or "csv" for a file, or for a folder of part files of one format."""
    if path.is_dir() and not path.suffix:
        suffixes = {p.suffix.lower() for p in path.iterdir() if p.is_file() and not p.name.startswith(("_", "."))}
        if len(suffixes) == 1:
            return table_format(f"x{suffixes.pop()}", "data_path")
        raise PipelineError(f"folder {path} does not hold only .parquet or only .csv files; expected one table")
    return table_format(str(path), "data_path")


def predict_table(options: dict, run) -> None:
    """Check the inputs, score the table with the chosen engine, compare it with the training
    profile, and log where the predictions are."""
    import mlflow

    from tabular_pipeline.data.uris import redact_source
    from tabular_pipeline.monitoring.thresholds import parse_thresholds

    engine = check_engine(options["engine"])
    if options["batch_rows"] < 1:
        raise PipelineError(f"batch_rows is {options['batch_rows']}; expected a positive number of rows per batch")
    master = ""
    if engine == "spark":
        from tabular_pipeline.spark.session import check_master

        master = check_master(options["spark_master"])
    key_columns = parse_key_columns(options["key_columns"])
    thresholds = parse_thresholds(options["drift_thresholds"])
    output_text = options["output"].strip()
    output_format = table_format(output_text, "output") if output_text else "parquet"
    info = check_model(options["model_uri"].strip())
    started = time.monotonic()
    data_path = options["data_path"].strip()
    output = check_output_path(output_text, local_input(data_path), options["overwrite"]) if output_text else None
    if output is not None and output.exists():
        log.info("replacing %s (%s)", output, "overwrite=true" if options["overwrite"] else "an earlier predict output")
    record = output_record(run.info.run_id, options["model_uri"].strip())
    overwrite = options["overwrite"]
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        output = output or scratch / PREDICTIONS_ARTIFACT_PATH / f"predictions.{output_format}"
        model_dir, monitor = local_model(info.model_uri, scratch / "model", options["fail_on_drift"])
        log.info("scoring %s with %s on the %s engine", redact_source(data_path), options["model_uri"], engine)
        engine_args = (info, model_dir, key_columns)
        if engine == "spark" and data_path.startswith(SPARK_NATIVE_SCHEMES):
            fmt = table_format(data_path, "data_path")
            rows = spark_engine(
                data_path, fmt, *engine_args, master, str(output), output_format, monitor, record, overwrite
            )
        else:
            source = local_table(data_path, scratch)
            fmt = data_format(source)
            if engine == "spark":
                rows = spark_engine(
                    str(source), fmt, *engine_args, master, str(output), output_format, monitor, record, overwrite
                )
            else:
                totals = pandas_engine(
                    source, fmt, *engine_args, options["batch_rows"], output, output_format, monitor, record, overwrite
                )
                rows = totals.rows
        seconds = time.monotonic() - started
        if output_text:
            location = str(output)
        else:
            mlflow.log_artifact(str(output), PREDICTIONS_ARTIFACT_PATH)
            location = f"runs:/{run.info.run_id}/{PREDICTIONS_ARTIFACT_PATH}/{output.name}"
    throughput = rows / seconds if seconds > 0 else 0.0
    mlflow.log_metrics({"rows_scored": rows, "scoring_seconds": seconds, "rows_per_second": throughput})
    mlflow.set_tags({TAG_OUTPUT_URI: location, "predict.engine": engine})
    log.info("scored %s rows in %.1f s (%.0f rows/s); predictions at %s", f"{rows:,}", seconds, throughput, location)
    check_monitoring(monitor, info, options, thresholds, rows, run)


def local_model(model_uri: str, destination: Path, fail_on_drift: bool) -> tuple[Path, ScoringMonitor | None]:
    """The model downloaded once (both engines load it from here), and the monitor of its training
    profile (None, said once, for a model logged without one; a profile from before performance
    monitoring gets drift only, also said once)."""
    import mlflow

    from tabular_pipeline.monitoring.profile import load_profile

    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(destination)))
    profile = load_profile(model_dir)
    # A warning when the caller asked to fail on drift: what is missing cannot fail this run.
    say = log.warning if fail_on_drift else log.info
    if profile is None:
        say("model %s carries no training profile (logged before drift monitoring); drift is not checked", model_uri)
        mlflow.set_tag("monitoring.profile", "absent")
        return model_dir, None
    from tabular_pipeline.monitoring.monitor import ScoringMonitor

    monitor = ScoringMonitor.from_profile(profile)
    if monitor.performance is None:
        say(
            "model %s carries no performance calibration (logged before performance monitoring); realized and "
            "estimated performance are not computed",
            model_uri,
        )
    return model_dir, monitor


def check_monitoring(
    monitor: ScoringMonitor | None, info, options: dict, thresholds: dict[str, float], rows: int, run
) -> None:
    """Record drift and performance of the scored table and, with fail_on_drift, fail after
    everything is written when a column drifted or the model's performance dropped."""
    from tabular_pipeline.data.uris import redact_source
    from tabular_pipeline.monitoring.report import REPORT_PATH, measure, record_monitoring

    if monitor is None:
        return
    data = redact_source(options["data_path"].strip())
    findings = measure(monitor, thresholds)
    model_key = info.model_id or info.model_uuid or info.model_uri
    record_monitoring(findings, options["model_uri"].strip(), model_key, data, rows, options["fail_on_drift"])
    figures = findings.performance
    degraded = figures is not None and bool(figures.degraded)
    if not options["fail_on_drift"] or not (findings.drifted or degraded):
        return
    problems = []
    if findings.drifted:
        problems.append(f"drift in {len(findings.drifted)} column(s): {', '.join(findings.drifted)}")
    if degraded:
        values = {"realized": figures.realized, "estimated": figures.estimated}
        fell = ", ".join(f"{kind} {figures.primary} {values[kind][figures.primary]:.4f}" for kind in figures.degraded)
        problems.append(f"performance dropped ({fell} against {figures.recorded[figures.primary]:.4f} recorded)")
    raise PipelineError(
        f"{'; '.join(problems)} (report: runs:/{run.info.run_id}/{REPORT_PATH}); expected a table like the "
        "training data and a model as good as when trained (the predictions are written; -P fail_on_drift=false "
        "only reports)"
    )


# Help lines for `--help`; names, types and defaults come from MLproject.
HELP = {
    "model_uri": "models:/<name>/<version|stage>, models:/<name>@<alias> or runs:/<run id>/<path>.",
    "data_path": "A .csv or .parquet file (or a folder of part files), local or a URI.",
    "output": "A .parquet or .csv path; empty logs the predictions as a run artifact.",
    "engine": "pandas (streams in batches) or spark (spark_udf).",
    "key_columns": "Columns copied next to the predictions; empty: every column the model does not read but its label.",
    "batch_rows": "Rows per batch on the pandas engine.",
    "spark_master": "local[*], local[N] or spark://host:port.",
    "drift_thresholds": (
        "psi=<PSI at or above>;missing=<rise in missing share> (a column drifted), js=/wasserstein= (optional), "
        "share=<drifted share, default 0.5> (the table), drop=<metric drop, default 0.05> (the model degraded)."
    ),
    "fail_on_drift": "Fail the run (after writing everything) when a column drifted or performance dropped.",
    "overwrite": "Replace a file or folder at output that predict did not write.",
}


@click.command()
@entry_point_options("predict", HELP)
def predict(**options) -> None:
    """Score a table with a logged or registered model and write key columns plus predictions."""
    run_step("predict", lambda run: predict_table(options, run))


if __name__ == "__main__":
    predict()
