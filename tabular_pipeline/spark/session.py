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


def is_local_master(master: str) -> bool:
    """Whether every executor runs on this machine (a local session, or a cluster on loopback)."""
    return master.startswith("local") or any(
        master.startswith(f"spark://{host}") for host in ("127.0.0.1", "localhost")
    )


def spark_failure(error: BaseException, what: str) -> PipelineError:
    """A Spark or JVM error as one line: Spark's own message ("[PATH_NOT_FOUND] Path does not
    exist: ..."), or the Java exception's first line for a failure inside Hadoop or the JVM."""
    from tabular_pipeline.errors import one_line

    java = getattr(error, "java_exception", None)
    message = one_line(java.toString() if java is not None else error, 300)
    return PipelineError(f"{what} failed on Spark: {message}")


def start_session(master: str, app_name: str):
    """A Spark session with Arrow transfer on, and the UI and console progress bars off.

    Executors run Python from `PYSPARK_PYTHON`; unset, on a local session or a cluster on this
    machine, it is this interpreter (a remote cluster keeps its own setting).

    Spark's own log is turned down to FATAL once the session is up: a failed job reaches the step
    as an exception, which it reports in one line (or with the Java trace when unexpected), instead
    of Spark logging the same Java stack several times over first.
    """
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException
    from pyspark.logger import PySparkLogger
    from pyspark.sql import SparkSession

    if is_local_master(master):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    log_config = f"-Dlog4j.configurationFile={LOG_CONFIG.as_uri()}"

    try:
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
    except (PySparkException, Py4JError) as error:  # no Java, an unreachable master, a bad setting
        raise spark_failure(error, f"starting a session on {master}") from None
    spark.sparkContext.setLogLevel("FATAL")
    for name in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    # xgboost.spark logs its parameters and each stage at INFO; the step logs what was fitted.
    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)
    # py4j logs each connection it closes at INFO: noise in a step's log.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    return spark


def stop_session(spark, wait_s: float = 30.0) -> None:
    """Stop the session and its JVM, and wait for the JVM to exit.

    `SparkSession.stop` leaves the gateway JVM running until Python exits; killed then (the step
    ends every child it leaves), it took py4j's connection threads by surprise, and they printed a
    traceback over a finished step. Closing the gateway and the JVM's stdin ends it cleanly.
    """
    import subprocess

    from py4j.protocol import Py4JError
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:  # stopped already
        return
    try:
        spark.stop()
    except Py4JError:  # the JVM died first (killed, out of memory): nothing left to stop there
        pass
    process = getattr(gateway, "proc", None)
    if process is None:  # a gateway this process did not launch (spark-submit's): not ours to end
        return
    gateway.shutdown()
    SparkContext._gateway, SparkContext._jvm = None, None
    if process.stdin:
        process.stdin.close()  # the JVM exits when this pipe closes
    try:
        process.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def read_table(spark, path: str, fmt: str):
    """Read a Parquet or CSV table (CSV with a header, types inferred as pandas would)."""
    reader = spark.read
    if fmt == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true").option("enforceSchema", "false")
    return reader.format(fmt).load(path)
