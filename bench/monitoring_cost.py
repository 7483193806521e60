"""The cost of drift monitoring in batch scoring: the pandas engine's loop (cast each batch, predict,
write) with and without counting the batch on the training profile's bins, on the same table and
model, in one process. Prints the medians and their ratio as JSON.

    python -m bench.monitoring_cost --rows 1000000 --repeats 3
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click


def scoring_seconds(model, plan, table_path: Path, output: Path, counter, batch_rows: int) -> float:
    """One pass of the pandas engine's loop over the table; counts drift when `counter` is given."""
    import pyarrow.dataset as ds

    from tabular_pipeline.scoring.batch import TableWriter, score_stream

    def predict(features):
        if counter is not None:
            counter.add(features)
        return model.predict(features)

    started = time.perf_counter()
    writer = TableWriter(output, "parquet")
    score_stream(ds.dataset(str(table_path), format="parquet").to_batches(batch_size=batch_rows), plan, predict, writer)
    writer.commit()
    return time.perf_counter() - started


@click.command()
@click.option("--rows", type=int, default=1_000_000, show_default=True)
@click.option("--columns", type=int, default=20, show_default=True)
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--batch_rows", type=int, default=100_000, show_default=True)
def main(rows: int, columns: int, repeats: int, batch_rows: int) -> None:
    """Train a LightGBM model on generated rows, then time scoring `rows` rows with and without monitoring."""
    from statistics import median

    from tabular_pipeline.data.splits import harmonise_dtypes
    from tabular_pipeline.data.synthetic import make_mixed_table
    from tabular_pipeline.monitoring.drift import DriftCounter
    from tabular_pipeline.monitoring.profile import training_profile
    from tabular_pipeline.scoring.batch import InputColumn, plan_scoring
    from tabular_pipeline.training.pipelines import build_pipeline, fit_params_for, split_feature_columns

    train = harmonise_dtypes(make_mixed_table(20_000, columns, seed=1), "label")
    features, label = train.drop(columns=["label", "row_id"]), train["label"]
    features = features.astype({name: object for name in features.columns if str(features[name].dtype) == "category"})
    kinds = split_feature_columns(features)
    model = build_pipeline("lightgbm", "binary", {}, kinds, seed=1).fit(
        features, label, **fit_params_for("lightgbm", kinds)
    )
    profile = training_profile(features)
    schema = [
        InputColumn(name, "double" if name in kinds.numeric else "boolean" if name == "flag" else "string")
        for name in features.columns
    ]
    with tempfile.TemporaryDirectory() as scratch:
        table_path = Path(scratch) / "rows.parquet"
        table = make_mixed_table(rows, columns, seed=2).drop(columns=["label"])
        table.astype({name: object for name in table.columns if str(table[name].dtype) == "category"}).to_parquet(
            table_path, index=False
        )
        plan = plan_scoring(list(table.columns), schema, ["row_id"])
        timings = {"off": [], "on": []}
        for _ in range(repeats):
            for mode in ("off", "on"):
                counter = DriftCounter(profile) if mode == "on" else None
                timings[mode].append(
                    scoring_seconds(model, plan, table_path, Path(scratch) / f"{mode}.parquet", counter, batch_rows)
                )
    off, on = median(timings["off"]), median(timings["on"])
    click.echo(
        json.dumps(
            {"rows": rows, "columns": len(profile["columns"]), "without_s": off, "with_s": on, "ratio": on / off}
        )
    )


if __name__ == "__main__":
    main()
