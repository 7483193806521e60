"""The cost of monitoring in batch scoring, on both engines of `predict`: the same labelled table
and LightGBM model scored three ways, in one process (the engines' own code, no MLflow run around
them), medians of the repetitions:

- `scoring`: the model's predictions only;
- `drift`: plus the drift counts of the training profile (what `predict` did before performance);
- `performance`: plus realized and estimated performance (the model answers with its
  probabilities; the label column is counted).

The pandas engine is timed whole (`scoring.engines.pandas_engine`: read, cast, predict, count,
write); the Spark engine from its scoring job to the observation's counts, on a session started
once (`local[*]`). Prints one JSON line; `--report` turns it into the markdown table of
bench/RESULTS.md.

    python -m bench.monitoring_cost --rows 1000000 --repeats 3 --engines pandas,spark
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from statistics import median

import click

from bench.session import measured_commit, scratch_experiment

MODES = ("scoring", "drift", "performance")


def trained_model(scratch: Path, columns: int) -> tuple[str, dict]:
    """A LightGBM model trained like `train_basic` (with its monitoring profile), logged to a
    store in `scratch`; returns its local folder and its profile."""
    import mlflow

    from tabular_pipeline.data.splits import harmonise_dtypes
    from tabular_pipeline.data.synthetic import make_mixed_table
    from tabular_pipeline.evaluation.metrics import evaluate_model
    from tabular_pipeline.monitoring.calibration import model_performance_profile
    from tabular_pipeline.monitoring.profile import training_profile
    from tabular_pipeline.training.model_logging import log_pipeline_model
    from tabular_pipeline.training.pipelines import build_pipeline, fit_params_for, split_feature_columns

    table = harmonise_dtypes(make_mixed_table(25_000, columns, seed=1), "label")
    table = table.astype({name: object for name in table.columns if str(table[name].dtype) == "category"})
    train, test = table.iloc[:20_000], table.iloc[20_000:]
    features = train.drop(columns=["label", "row_id"])
    kinds = split_feature_columns(features)
    model = build_pipeline("lightgbm", "binary", {}, kinds, seed=1).fit(
        features, train["label"], **fit_params_for("lightgbm", kinds)
    )
    metrics = evaluate_model(model, test.drop(columns=["label", "row_id"]), test["label"], "binary")
    performance = model_performance_profile(model, test.drop(columns=["row_id"]), "label", "binary", metrics, seed=1)
    profile = training_profile(features, performance)
    tracking_uri = f"sqlite:///{scratch / 'bench.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment_id=scratch_experiment(tracking_uri, "monitoring-cost", scratch))
    with mlflow.start_run():
        info = log_pipeline_model(model, features, "lightgbm", profile=profile)
    return mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(scratch / "model")), profile


def monitor_for(mode: str, profile: dict):
    from tabular_pipeline.monitoring.monitor import ScoringMonitor

    if mode == "scoring":
        return None
    return ScoringMonitor.from_profile(profile if mode == "performance" else {**profile, "performance": None})


def pandas_seconds(model_dir: str, info, table: Path, output: Path, monitor, batch_rows: int) -> float:
    from tabular_pipeline.scoring.engines import pandas_engine

    started = time.perf_counter()
    pandas_engine(table, "parquet", info, Path(model_dir), ["row_id"], batch_rows, output, "parquet", monitor)
    return time.perf_counter() - started


def spark_seconds(spark, model_dir: str, info, table: Path, output: Path, monitor) -> float:
    from tabular_pipeline.monitoring.spark_counts import ROWS, set_counts
    from tabular_pipeline.scoring import spark as spark_scoring
    from tabular_pipeline.scoring.batch import input_columns, plan_scoring

    frame = spark.read.parquet(str(table))
    label = monitor.label_column if monitor is not None else None
    plan = plan_scoring(frame.columns, input_columns(info.signature.inputs), ["row_id"], label)
    started = time.perf_counter()
    scored, observation, kept = spark_scoring.score_frame(
        frame, plan, model_dir, plan.features, spark_scoring.result_type(info.signature.outputs), monitor
    )
    spark_scoring.write_table(scored, str(output), "parquet")
    totals = observation.get  # the counts reach the driver with the write job
    counted = totals[ROWS]
    if kept is not None:  # the realized ROC AUC's ranking pass, as the engine makes it
        try:
            set_counts(monitor, totals, {c.name: c.name for c in plan.features})
            spark_scoring.add_ranked_aucs(kept, monitor)
        finally:
            kept.unpersist()
    seconds = time.perf_counter() - started
    if not counted:
        raise click.ClickException("the Spark observation counted no rows")
    return seconds


@click.command()
@click.option("--rows", type=int, default=1_000_000, show_default=True)
@click.option("--columns", type=int, default=20, show_default=True)
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--batch_rows", type=int, default=100_000, show_default=True)
@click.option("--engines", default="pandas", show_default=True, help="pandas, spark or pandas,spark")
@click.option("--report", "report_of", type=click.Path(exists=True), help="A JSON line this printed: print its table.")
def main(rows: int, columns: int, repeats: int, batch_rows: int, engines: str, report_of: str | None) -> None:
    """Time scoring `rows` labelled rows without monitoring, with drift counts, and with performance too."""
    if report_of:
        click.echo(markdown(json.loads(Path(report_of).read_text().strip().splitlines()[-1])))
        return
    import mlflow

    from tabular_pipeline.data.synthetic import make_mixed_table

    commit = measured_commit()  # the code that is timed, before anything can change under the run
    chosen = [name.strip() for name in engines.split(",") if name.strip()]
    timings = {engine: {mode: [] for mode in MODES} for engine in chosen}
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        model_dir, profile = trained_model(scratch, columns)
        info = mlflow.models.get_model_info(model_dir)
        table = scratch / "rows.parquet"
        frame = make_mixed_table(rows, columns, seed=2)
        frame.astype({name: object for name in frame.columns if str(frame[name].dtype) == "category"}).to_parquet(
            table, index=False, row_group_size=batch_rows
        )
        del frame
        spark = None
        if "spark" in chosen:
            from tabular_pipeline.spark.session import start_session

            spark = start_session("local[*]", "monitoring-cost")
        try:
            for repeat in range(repeats):
                for engine in chosen:
                    for mode in MODES:
                        output = scratch / f"{engine}-{mode}-{repeat}.parquet"
                        monitor = monitor_for(mode, profile)
                        if engine == "pandas":
                            seconds = pandas_seconds(model_dir, info, table, output, monitor, batch_rows)
                        else:
                            seconds = spark_seconds(spark, model_dir, info, table, output, monitor)
                        timings[engine][mode].append(seconds)
                        click.echo(f"{engine} {mode} #{repeat + 1}: {seconds:.1f} s", err=True)
        finally:
            if spark is not None:
                from tabular_pipeline.spark.session import stop_session

                stop_session(spark)
    result = {"commit": commit, "rows": rows, "columns": len(profile["columns"]), "repeats": repeats}
    result["engines"] = {}
    for engine, modes in timings.items():
        result["engines"][engine] = {f"{mode}_s": median(seconds) for mode, seconds in modes.items()}
    if "pandas" in result["engines"]:
        # The keys section 6 of `make bench` reads: scoring without monitoring against with drift counts.
        pandas = result["engines"]["pandas"]
        result.update(
            without_s=pandas["scoring_s"], with_s=pandas["drift_s"], ratio=pandas["drift_s"] / pandas["scoring_s"]
        )
    click.echo(json.dumps(result))


def markdown(result: dict) -> str:
    """The table bench/RESULTS.md quotes: each mode's median, and the two ratios that matter."""
    lines = [
        "| engine | scoring only (s) | + drift (s) | + drift + performance (s) | performance / drift (target ≤ 1.15) | "
        "all monitoring / scoring only |",
        "|---|---|---|---|---|---|",
    ]
    if "commit" in result:  # lines written before the commit was recorded have none
        lines.insert(0, f"At commit {result['commit']}, {result['rows']:,} rows, median of {result['repeats']}:\n")
    for engine, seconds in result["engines"].items():
        scoring, drift, performance = seconds["scoring_s"], seconds["drift_s"], seconds["performance_s"]
        lines.append(
            f"| {engine} | {scoring:.1f} | {drift:.1f} | {performance:.1f} | {performance / drift:.2f} | "
            f"{performance / scoring:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
