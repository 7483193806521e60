"""The baseline of the AutoML benchmark: FLAML's `AutoML.fit` called directly, with the same budget,
metric and seed, on the same train/test split `train_automl` makes; prints the test score as JSON.

    python -m bench.direct_flaml --data_path table.csv --time_budget 60
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click


@click.command()
@click.option("--data_path", required=True)
@click.option("--label_column", default="label")
@click.option("--time_budget", type=float, default=60.0)
@click.option("--seed", type=int, default=1)
def main(data_path: str, label_column: str, time_budget: float, seed: int) -> None:
    """Fit FLAML on the raw training frame and score it on the test split."""
    import warnings

    from tabular_pipeline.data.splits import prepare_splits
    from tabular_pipeline.data.tables import locate_table
    from tabular_pipeline.evaluation.metrics import evaluate_model
    from tabular_pipeline.training.automl.flaml_search import FLAML_METRIC, flaml_automl_class

    splits, task = prepare_splits(locate_table(Path(data_path).resolve()), label_column, 0.25, seed, "auto")
    train_x, train_y = splits.train.drop(columns=[label_column]), splits.train[label_column]
    automl = flaml_automl_class()()
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        automl.fit(
            train_x,
            train_y,
            task="regression" if task == "regression" else "classification",
            metric=FLAML_METRIC[task],
            time_budget=time_budget,
            seed=seed,
            verbose=0,
        )
    seconds = time.monotonic() - started
    metrics = evaluate_model(automl, splits.test.drop(columns=[label_column]), splits.test[label_column], task)
    click.echo(json.dumps({"seconds": seconds, "task": task, "best_estimator": automl.best_estimator, **metrics}))


if __name__ == "__main__":
    main()
