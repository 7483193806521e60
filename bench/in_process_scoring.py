"""The baseline of the batch-scoring benchmark: load the model, read the whole table with pandas,
cast it to the model's input schema and call `model.predict` once; prints rows/s as JSON.

    python -m bench.in_process_scoring --model_uri models:/bench-large@production --data_path batch.parquet
"""

from __future__ import annotations

import json
import time

import click


@click.command()
@click.option("--model_uri", required=True)
@click.option("--data_path", required=True)
def main(model_uri: str, data_path: str) -> None:
    """Score the whole table in one call and report the scoring and end-to-end throughput."""
    import mlflow
    import pyarrow.parquet as pq

    from tabular_pipeline.orchestration.step_runs import peak_memory_mb
    from tabular_pipeline.scoring.batch import arrow_feature_schema, cast_features, input_columns

    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(model_uri)
    table = pq.read_table(data_path)
    frame = cast_features(table, arrow_feature_schema(input_columns(model.metadata.get_input_schema()))).to_pandas()
    scoring_started = time.perf_counter()
    predictions = model.predict(frame)
    done = time.perf_counter()
    rows = len(predictions)
    peak_mb = peak_memory_mb()
    click.echo(
        json.dumps(
            {
                "rows": rows,
                "rows_per_second": rows / (done - scoring_started),
                "end_to_end_rows_per_second": rows / (done - started),
                "peak_memory_mb": peak_mb,
            }
        )
    )


if __name__ == "__main__":
    main()
