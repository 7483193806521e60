"""The baseline of the pipeline-overhead benchmark: the same work as `main` (read, split, log the
splits, fit, evaluate, log the model, register and promote) in one process and one MLflow run,
calling the project's own functions, so only the orchestration differs.

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
    import mlflow

    from tabular_pipeline.data.screening import screen_columns
    from tabular_pipeline.data.splits import prepare_splits
    from tabular_pipeline.data.tables import locate_table
    from tabular_pipeline.evaluation.report import log_evaluation
    from tabular_pipeline.registry.promotion import promote
    from tabular_pipeline.training.model_logging import log_pipeline_model
    from tabular_pipeline.training.pipelines import (
        build_pipeline,
        data_dependent_defaults,
        fit_params_for,
        split_feature_columns,
    )

    mlflow.set_experiment(experiment_name)
    with mlflow.start_run(), tempfile.TemporaryDirectory() as scratch:
        splits, task = prepare_splits(locate_table(Path(data_path).resolve()), label_column, 0.25, 1, "auto")
        staging = Path(scratch) / "processed"
        staging.mkdir()
        splits.train.to_parquet(staging / "train.parquet", index=False)
        splits.test.to_parquet(staging / "test.parquet", index=False)
        mlflow.log_artifacts(str(staging), "processed")
        train_x, train_y = splits.train.drop(columns=[label_column]), splits.train[label_column]
        kept, _ = screen_columns(train_x)
        columns = split_feature_columns(train_x[kept])
        pipeline = build_pipeline(
            algorithm, task, {}, columns, 1, data_dependent_defaults(algorithm, task, train_y, columns)
        )
        model = pipeline.fit(train_x, train_y, **fit_params_for(algorithm, columns))
        log_evaluation(model, splits.test, label_column, task, 1)
        info = log_pipeline_model(model, train_x, algorithm)
        version = mlflow.register_model(info.model_uri, model_name)
        promote(mlflow.MlflowClient(), model_name, version.version, "production")
    click.echo(f"models:/{model_name}/{version.version}")


if __name__ == "__main__":
    main()
