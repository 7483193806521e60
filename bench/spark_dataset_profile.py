"""What logging a Spark split as an MLflow dataset costs the work after it (the first finding of
#25). MLflow's own `SparkDataset.profile` starts an approximate count (`rdd.sumApprox`, a 5 s
timeout) that runs on after `log_input` returns; the project's `CountedSparkDataset` (since
29d8b58) is given the row count it already has. On one cached frame in one session: a count that
fills the cache, a count as the fit's first pass would make, then each way of logging followed by
the same count (the project's first, since MLflow's leaves its job running). One JSON line each.

    python -m bench.spark_dataset_profile --rows 5000000
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from pathlib import Path

import click

from bench.session import measured_commit, scratch_experiment


def mixed_frame(spark, rows: int, columns: int):
    """`rows` rows of `columns` floats, a text category and a 0/1 label, generated on the cluster."""
    from pyspark.sql import functions as F

    floats = [F.rand(seed).alias(f"num_{seed:02d}") for seed in range(columns)]
    category = F.concat(F.lit("level_"), (F.col("id") % 100).cast("string")).alias("category")
    return spark.range(rows).select("id", *floats, category, (F.rand(99) > 0.5).cast("int").alias("label"))


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@click.command()
@click.option("--rows", type=click.IntRange(min=1), default=5_000_000, show_default=True)
@click.option("--columns", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--master", default="local[2]", show_default=True, help="local[*], local[N] or spark://host:port.")
def main(rows: int, columns: int, master: str) -> None:
    """Log the same cached frame as a dataset both ways, and time the count after each."""
    from tabular_pipeline.errors import PipelineError
    from tabular_pipeline.spark.session import check_master

    try:
        master = check_master(master)
    except PipelineError as error:
        raise click.BadParameter(str(error), param_hint="--master") from None
    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource

    from tabular_pipeline.registry.datasets import log_dataset
    from tabular_pipeline.spark.datasets import CountedSparkDataset
    from tabular_pipeline.spark.session import start_session, stop_session

    commit = measured_commit()
    with tempfile.TemporaryDirectory(prefix="bench-dataset-profile-") as scratch:
        tracking_uri = f"sqlite:///{Path(scratch) / 'mlflow.db'}"
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment(experiment_id=scratch_experiment(tracking_uri, "dataset-profile", Path(scratch)))
        spark = start_session(master, "bench-dataset-profile")
        try:
            frame = mixed_frame(spark, rows, columns).cache()
            record = {"rows": rows, "columns": columns + 3, "master": master, "commit": commit}
            record["fill_cache_s"] = timed(frame.count)
            record["count_s"] = timed(frame.count)
            click.echo(json.dumps({**record, "way": "none"}))
            for way in ("counted", "mlflow"):
                # Named apart: a store keeps one record per name and digest, and both have the frame's.
                name = f"split-{way}"
                with warnings.catch_warnings():
                    # MLflow's hint about integer columns, which the project's dataset holds back too.
                    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
                    if way == "counted":
                        source = CodeDatasetSource({})
                        dataset = CountedSparkDataset(rows, df=frame, source=source, targets="label", name=name)
                    else:
                        dataset = mlflow.data.from_spark(frame, path=None, targets="label", name=name)
                    with mlflow.start_run(run_name=way) as run:
                        logged_s = timed(lambda dataset=dataset: log_dataset(dataset, context="training"))
                        # How long the next pass waits: behind MLflow's profile job, if one still runs.
                        count_s = timed(frame.count)
                [logged] = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
                profile = json.loads(logged.dataset.profile or "null") or {}
                result = {"way": way, "log_s": logged_s, "count_after_s": count_s, "profile": profile}
                click.echo(json.dumps({**record, **result}))
        finally:
            stop_session(spark)


if __name__ == "__main__":
    main()
