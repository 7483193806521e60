"""The baseline of the pipeline-overhead benchmark: the same work as `main` in one process and one
MLflow run, so only the orchestration differs. It reads and splits the table, logs the splits (what
`process` does), then calls `train_basic`'s and `register`'s own functions: the fit with the same
booster threads, the evaluation, the monitoring profile, the training rows' hashes, the model and
its card, then the gate (both models scored as served) and the registration.

What it leaves out is what the issue counts as overhead: the steps' processes and their start-up,
the raw table's round trip through the artifact store, and the requests between the steps.

    python -m bench.plain_pipeline --data_path data/breast_cancer.csv --model_name plain
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click


@click.command()
@click.option("--data_path", required=True)
@click.option("--label_column", default="label")
@click.option("--algorithm", default="lightgbm")
@click.option("--model_name", required=True)
@click.option("--experiment_name", default="bench-plain")
def main(data_path: str, label_column: str, algorithm: str, model_name: str, experiment_name: str) -> None:
    """Train and register one model without the step machinery."""
    import os

    # As every step does (`run_step`): MLflow draws a progress bar per artifact it copies otherwise.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    from steps.register import register_model
    from steps.train_basic import train_basic, train_on_splits
    from tabular_pipeline.data.splits import prepare_splits
    from tabular_pipeline.data.tables import locate_table
    from tabular_pipeline.training.algorithms import normalise_algorithm

    # The step's own options, parsed as its command line would be (MLproject's defaults).
    arguments = ["--data_path", data_path, "--label_column", label_column, "--algorithm", algorithm]
    options = train_basic.make_context("train_basic", arguments).params
    mlflow.set_experiment(experiment_name)
    with mlflow.start_run(), tempfile.TemporaryDirectory() as scratch:
        splits, task = prepare_splits(
            locate_table(Path(data_path).resolve()), label_column, options["test_size"], options["seed"], "auto"
        )
        staging = Path(scratch) / "processed"
        staging.mkdir()
        splits.train.to_parquet(staging / "train.parquet", index=False)
        splits.test.to_parquet(staging / "test.parquet", index=False)
        mlflow.log_artifacts(str(staging), "processed")
        info = train_on_splits(splits, task, normalise_algorithm(algorithm), {}, options)
        register_model(info.model_uri, model_name, "production", "", 0.0, False)
    click.echo(info.model_uri)


if __name__ == "__main__":
    main()
