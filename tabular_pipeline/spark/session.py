"""Starting a Spark session for a step, and reading tables with it."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from tabular_pipeline.errors import PipelineError

# Errors only from Spark's JVM (its start-up warnings are about this machine, not the step).
LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
MASTER_PATTERN = re.compile(
    r"^(local(\[(\*|\d+)(,\d+)?\])?|spark://[A-Za-z0-9.\-]+(:\d+)?(,[A-Za-z0-9.\-]+(:\d+)?)*|yarn|k8s://\S+)$"
)


def check_master(master: str) -> str:
    """Accept local[...], spark://host:port, yarn or k8s://...; refuse anything else in one line."""
    value = (master or "").strip()
    if not MASTER_PATTERN.match(value):
        raise PipelineError(
            f"spark_master '{master}' is not a Spark master URL; expected local[*], local[N], spark://host:port, "
            "yarn or k8s://host:port"
        )
    return value


def start_session(master: str, app_name: str):
    """A Spark session with Arrow transfer on, and the UI and console progress bars off.

    Executors run Python from `PYSPARK_PYTHON`; unset, it is this interpreter, which is right for
    local sessions and single-machine clusters (a real cluster sets it to its own Python).

    Spark's own log is turned down to FATAL once the session is up: a failed job reaches the step
    as an exception, which it reports in one line (or with the Java trace when unexpected), instead
    of Spark logging the same Java stack several times over first.
    """
    from pyspark.logger import PySparkLogger
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    log_config = f"-Dlog4j.configurationFile={LOG_CONFIG.as_uri()}"
    spark = (
        SparkSession.builder.master(master)
        .config("spark.driver.extraJavaOptions", log_config)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("FATAL")
    for name in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    # xgboost.spark logs its parameters and each stage at INFO; the step logs what was fitted.
    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)
    return spark


def read_table(spark, path: str, fmt: str):
    """Read a Parquet or CSV table (CSV with a header, types inferred as pandas would)."""
    reader = spark.read
    if fmt == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true").option("enforceSchema", "false")
    return reader.format(fmt).load(path)
