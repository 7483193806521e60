"""A Spark step's output is its own lines and real problems: a local session (whose Python workers
write through the JVM) started as the steps start it prints none of the JVM's start-up notices,
XGBoost's rank lines or MLflow's integer-column hint, and still lets an error through."""

from __future__ import annotations

import subprocess
import sys

from conftest import PROJECT_DIR

SESSION = """
import numpy as np, pandas as pd, mlflow
from xgboost.spark import SparkXGBClassifier
from tabular_pipeline.orchestration.step_runs import configure_logging
from tabular_pipeline.spark.session import start_session, stop_session

configure_logging()
spark = start_session("local[2]", "noise-check")
rng = np.random.default_rng(0)
table = pd.DataFrame({"a": rng.normal(size=200), "b": rng.integers(0, 9, 200)})
table["label"] = (table["a"] > 0).astype(int)
frame = spark.createDataFrame(table)
mlflow.data.from_spark(frame, path=None, name="train", targets="label").to_dict()  # a dataset record's schema
SparkXGBClassifier(features_col=["a", "b"], label_col="label", num_workers=2, n_estimators=3).fit(frame)
spark.sparkContext._jvm.java.lang.System.err.println("a real problem, from the JVM")
stop_session(spark)
print("done")
"""
NOISE = ("WARNING: Using incubator modules", "Setting default log level", "setLogLevel", "Hint:", "got rank")


def test_a_local_session_prints_no_start_up_notices_but_real_problems():
    done = subprocess.run([sys.executable, "-c", SESSION], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-3000:]
    for noise in NOISE:
        assert noise not in done.stderr, f"{noise!r} in:\n{done.stderr[-3000:]}"
    assert "a real problem, from the JVM" in done.stderr, "the JVM's own errors still get through"
