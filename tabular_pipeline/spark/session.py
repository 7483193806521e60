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
    try:
        message = one_line(java.toString() if java is not None else error, 300)
    except Exception:  # noqa: BLE001 - the JVM holding the message is gone; say that instead
        message = f"{type(error).__name__} (the Spark JVM ended before saying why)"
    return PipelineError(f"{what} failed on Spark: {message}")


def session_failure(error: BaseException, master: str) -> PipelineError:
    """Why a session could not start, in one line that says what to do for the usual causes."""
    failure = str(spark_failure(error, f"starting a session on {master}"))
    if "JAVA_GATEWAY_EXITED" in failure:
        return PipelineError(f"{failure}; expected Java 17 or later on PATH or in JAVA_HOME")
    if master.startswith("spark://") and ("stopped SparkContext" in failure or "JVM ended" in failure):
        return PipelineError(
            f"the Spark master {master} did not accept the application (unreachable, or no worker with enough "
            "memory); expected a running master and worker at that address"
        )
    return PipelineError(failure)


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
    # py4j logs each connection it closes at INFO, and a dropped one with a trace: noise in a step's
    # log (a failure that matters reaches the step as an exception).
    logging.getLogger("py4j").setLevel(logging.CRITICAL)
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
        end_gateway()  # the JVM may be up with its context stopped: end it now, not at exit
        raise session_failure(error, master) from None
    spark.sparkContext.setLogLevel("FATAL")
    for name in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    # xgboost.spark logs its parameters and each stage at INFO; the step logs what was fitted.
    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)
    return spark


def stop_session(spark, wait_s: float = 30.0) -> None:
    """Stop the session and its JVM, and wait for the JVM to exit.

    `SparkSession.stop` leaves the gateway JVM running until Python exits; killed then (the step
    ends every child it leaves), it took py4j's connection threads by surprise, and they printed a
    traceback over a finished step. Closing the gateway and the JVM's stdin ends it cleanly.
    """
    from py4j.protocol import Py4JError
    from pyspark import SparkContext

    if SparkContext._gateway is None:  # stopped already
        return
    try:
        spark.stop()
    except Py4JError:  # the JVM died first (killed, out of memory): nothing left to stop there
        pass
    end_gateway(wait_s)


def end_gateway(wait_s: float = 30.0) -> None:
    """Close py4j's gateway and wait for the JVM this process launched to exit (it exits when its
    stdin closes); a gateway this process did not launch (spark-submit's) is left alone."""
    import subprocess

    from pyspark import SparkContext

    gateway = SparkContext._gateway
    process = getattr(gateway, "proc", None)
    if gateway is None or process is None:
        return
    gateway.shutdown()
    SparkContext._gateway, SparkContext._jvm = None, None
    if process.stdin:
        process.stdin.close()
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
