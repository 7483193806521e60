"""The baseline of the pipeline-overhead benchmark: the same work as `main` in one process and one
MLflow run, so only the orchestration differs. It reads and splits the table, then calls the
steps' own functions: `process`'s logging of the splits (with their schema and profile),
`train_basic`'s fit with the same booster threads, evaluation, monitoring profile, training rows'
hashes, model and card, then `register`'s gate (both models scored as served) and registration.
It records `train_basic`'s parameters, as `mlflow run` does, and exits without Python's last
garbage collection, as the entry points do (`tabular_pipeline/process_exit.py`).

What it leaves out is what the issue counts as overhead: the steps' processes and their start-up,
the raw table's and the splits' round trips through the artifact store (and `train_basic`
re-reading and re-checking the splits), and the requests between the steps.

    python -m bench.plain_pipeline --data_path data/breast_cancer.csv --model_name plain
"""

from __future__ import annotations

from pathlib import Path

import click

from tabular_pipeline.process_exit import skip_final_collection

# Before anything registers an exit handler: those registered later run before the freeze.
skip_final_collection("bench.plain_pipeline")


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

    from bench.session import experiment_beside_store
    from steps.process import log_splits
    from steps.register import register_model
    from steps.train_basic import train_basic, train_on_splits
    from tabular_pipeline.data.splits import prepare_splits
    from tabular_pipeline.data.tables import locate_table
    from tabular_pipeline.errors import PipelineError, one_line
    from tabular_pipeline.parameters.entry_points import declared_parameters
    from tabular_pipeline.training.algorithms import normalise_algorithm

    # The step's own options, parsed as its command line would be (MLproject's defaults).
    arguments = ["--data_path", data_path, "--label_column", label_column, "--algorithm", algorithm]
    options = train_basic.make_context("train_basic", arguments).params
    try:
        # Checked before any run exists, as the steps check theirs.
        algorithm = normalise_algorithm(algorithm)
        table = locate_table(Path(data_path).resolve())
        mlflow.set_experiment(experiment_id=experiment_beside_store(experiment_name))
        with mlflow.start_run():
            mlflow.log_params({name: options[name] for name in declared_parameters("train_basic")})
            splits, task = prepare_splits(table, label_column, options["test_size"], options["seed"], options["task"])
            log_splits(splits, label_column, task)
            info = train_on_splits(splits, task, algorithm, {}, options)
            register_model(info.model_uri, model_name, "production", "", 0.0, False)
    except PipelineError as error:  # bad input: one line, as the steps say it
        raise click.ClickException(one_line(error)) from None
    click.echo(info.model_uri)


if __name__ == "__main__":
    main()
