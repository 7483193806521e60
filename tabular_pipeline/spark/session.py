"""Starting a Spark session for a step, and reading tables with it."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path

from tabular_pipeline.errors import PipelineError

# Errors only from Spark's JVM (its start-up warnings are about this machine, not the step).
LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
# What the JVM prints on every start, or its Python workers on every XGBoost fit, whatever the step:
# the Vector API module Spark's launcher always adds, and which rank each XGBoost task got.
JVM_NOISE = re.compile(r"^WARNING: Using incubator modules: .*|\[\d\d:\d\d:\d\d\] Task \d+ got rank \d+")
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
    # py4j also reports a call it retries, or one a Ctrl-C interrupted, with a traceback on the root
    # logger; what matters reaches the step as an exception, which it reports in one line.
    logging.getLogger().addFilter(_not_py4j_call_report)
    log_config = f"-Dlog4j.configurationFile={LOG_CONFIG.as_uri()}"
    step_handler = signal.getsignal(signal.SIGINT)
    try:
        launch_jvm(log_config)
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
    keep_step_interrupt_handler(step_handler, spark)
    spark.sparkContext.setLogLevel("FATAL")
    for name in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    # xgboost.spark logs its parameters and each stage at INFO; the step logs what was fitted.
    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)
    return spark


PY4J_CALL_REPORTS = ("Exception while sending command.", "KeyboardInterrupt while sending command.")


def _not_py4j_call_report(record: logging.LogRecord) -> bool:
    return record.getMessage() not in PY4J_CALL_REPORTS


def keep_step_interrupt_handler(step_handler, spark) -> None:
    """Put back the step's own Ctrl-C handler, which `getOrCreate` replaced with Spark's.

    Spark's handler cancels the running jobs and raises KeyboardInterrupt on every Ctrl-C, so a
    second one could cut the step's clean-up short (half-written splits left behind). The step's
    handler ignores later ones; wrapped here, it first cancels the session's jobs, as Spark's did.
    """
    if not callable(step_handler) or step_handler is signal.default_int_handler:
        return

    def cancel_jobs() -> None:
        try:
            spark.sparkContext.cancelAllJobs()
        except Exception:  # noqa: BLE001 - a JVM already gone has no jobs left to cancel
            pass

    def cancel_jobs_then_stop(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # From another thread: py4j pins this thread's connection to the call the handler interrupted.
        canceller = threading.Thread(target=cancel_jobs, name="spark-cancel", daemon=True)
        canceller.start()
        canceller.join(timeout=10)
        step_handler(signum, frame)

    signal.signal(signal.SIGINT, cancel_jobs_then_stop)


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


def launch_jvm(java_options: str) -> None:
    """Start Spark's JVM for this process, its stderr (and that of local Python workers) passed on
    line by line without `JVM_NOISE`; `getOrCreate` then uses it. A JVM started by spark-submit,
    or one already running, is left as it is.

    Args:
        java_options: the driver's Java options, which only apply when the JVM starts.
    """
    import threading

    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None or "PYSPARK_GATEWAY_PORT" in os.environ:
        return
    # A pipe read from before the JVM starts: if it fails to start, what it said still gets through.
    read_end, write_end = os.pipe()
    reader = threading.Thread(target=pass_on_jvm_output, args=(read_end,), name="spark-jvm-stderr", daemon=True)
    reader.start()
    try:
        conf = SparkConf().set("spark.driver.extraJavaOptions", java_options)
        gateway = launch_gateway(conf, popen_kwargs={"stderr": write_end})
    except BaseException:
        os.close(write_end)
        reader.join(5)
        raise
    os.close(write_end)
    # Where pyspark keeps the gateway of the process (`end_gateway` clears the same two).
    SparkContext._gateway, SparkContext._jvm = gateway, gateway.jvm
    gateway.stderr_reader = reader


def pass_on_jvm_output(read_end: int) -> None:
    """Copy the JVM's stderr to this process's, a line at a time, leaving out `JVM_NOISE`."""
    with os.fdopen(read_end, "rb") as stream:
        for raw in stream:
            line = JVM_NOISE.sub("", raw.decode(errors="replace"))
            if line.strip():
                sys.stderr.write(line)
                sys.stderr.flush()


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
    reader = getattr(gateway, "stderr_reader", None)
    if reader is not None:
        reader.join(5)  # the JVM's last lines before the step's own


def read_table(spark, path: str, fmt: str):
    """Read a Parquet or CSV table (CSV with a header, types inferred as pandas would)."""
    reader = spark.read
    if fmt == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true").option("enforceSchema", "false")
    return reader.format(fmt).load(path)
