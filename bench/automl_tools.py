"""FLAML against AutoGluon at equal budgets, through this project's own search code, on three
generated tables (binary, multiclass, regression; text categories and missing values in each).

For each table, tool and budget it prints one JSON line: the test score of the project's primary
metric, the fit's wall time, and the one-row prediction latency (p50 and p95, in process, as the
served model loads it: FLAML's pipeline, AutoGluon's predictor with its models kept in memory).
Both tools get the same train/test split, the same screened columns and the same metric.

    python -m bench.automl_tools --budgets 60,300 --rows 20000 --output /tmp/automl_tools.jsonl
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from statistics import median

import click
import numpy as np

TASKS = ("binary", "multiclass", "regression")


def one_row_latency_ms(model, rows, requests: int) -> tuple[float, float]:
    """p50 and p95 of `model.predict` on one row at a time, after ten warm-up calls."""
    for index in range(10):
        model.predict(rows.iloc[[index]])
    timings = []
    for index in range(requests):
        row = rows.iloc[[index % len(rows)]]
        started = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - started) * 1000)
    return median(timings), float(np.percentile(timings, 95))


def fit_flaml(train, label: str, kept: list[str], task: str, budget: float, seed: int, scratch: Path):
    """The train_automl FLAML path: the project's preprocessing, FLAML's search, the servable pipeline."""
    from sklearn.preprocessing import LabelEncoder

    from tabular_pipeline.training.automl.flaml_search import assemble_pipeline, flaml_settings, run_search
    from tabular_pipeline.training.pipelines import build_preprocessor, split_feature_columns

    features, target = train.drop(columns=[label]), train[label]
    preprocessor = build_preprocessor("lightgbm", split_feature_columns(features[kept])).fit(features)
    encoder = LabelEncoder().fit(target) if task != "regression" else None
    coded = encoder.transform(target) if encoder is not None else target.to_numpy()
    settings = flaml_settings({}, budget, task, seed)
    automl = run_search(preprocessor.transform(features), coded, settings, scratch / "flaml.log")
    return assemble_pipeline(preprocessor, automl.model.estimator, encoder, task), automl.best_estimator


def fit_autogluon(train, label: str, kept: list[str], task: str, budget: float, scratch: Path):
    """The train_automl AutoGluon path; the model is reloaded from its deployment copy, as served."""
    from tabular_pipeline.serving.autogluon import as_estimator, load_predictor, quiet_gpu_check
    from tabular_pipeline.training.automl.autogluon_search import autogluon_settings, run_search

    quiet_gpu_check()
    settings = autogluon_settings({}, budget, task)
    _, outcome = run_search(train[[*kept, label]], label, task, settings, scratch)
    return as_estimator(load_predictor(str(outcome.predictor_dir))), outcome.best_model


@click.command()
@click.option("--budgets", default="60,300", show_default=True, help="Seconds, comma-separated.")
@click.option("--rows", type=int, default=20_000, show_default=True)
@click.option("--columns", type=int, default=20, show_default=True)
@click.option("--tasks", default=",".join(TASKS), show_default=True)
@click.option("--requests", type=int, default=200, show_default=True, help="One-row predictions timed per model.")
@click.option("--output", type=click.Path(path_type=Path), required=True, help="JSON lines, appended.")
def main(budgets: str, rows: int, columns: int, tasks: str, requests: int, output: Path) -> None:
    """Fit both tools at each budget on each table and append one JSON line per fit."""
    from tabular_pipeline.data.screening import screen_columns
    from tabular_pipeline.data.splits import prepare_splits
    from tabular_pipeline.data.synthetic import make_mixed_table
    from tabular_pipeline.data.tables import locate_table
    from tabular_pipeline.evaluation.metrics import PRIMARY_METRIC, evaluate_model

    seed = 1
    for task in tasks.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-automl-") as scratch_dir:
            scratch = Path(scratch_dir)
            table_file = scratch / f"{task}.parquet"
            make_mixed_table(rows, columns, task, seed=7).to_parquet(table_file, index=False)
            splits, _ = prepare_splits(locate_table(table_file), "label", 0.25, seed, task)
            kept, _ = screen_columns(splits.train.drop(columns=["label"]))
            test_x, test_y = splits.test.drop(columns=["label"]), splits.test["label"]
            for budget in (float(value) for value in budgets.split(",")):
                for tool in ("flaml", "autogluon"):
                    workdir = scratch / f"{tool}-{budget:g}"
                    workdir.mkdir()
                    started = time.monotonic()
                    if tool == "flaml":
                        model, best = fit_flaml(splits.train, "label", kept, task, budget, seed, workdir)
                    else:
                        model, best = fit_autogluon(splits.train, "label", kept, task, budget, workdir)
                    seconds = time.monotonic() - started
                    metric = PRIMARY_METRIC[task]
                    score = evaluate_model(model, test_x, test_y, task)[metric]
                    p50, p95 = one_row_latency_ms(model, test_x, requests)
                    record = {
                        "task": task, "rows": rows, "columns": columns, "tool": tool, "budget_s": budget,
                        "metric": metric, "score": score, "fit_wall_s": seconds, "best": best,
                        "latency_p50_ms": p50, "latency_p95_ms": p95,
                    }  # fmt: skip
                    click.echo(json.dumps(record))
                    with output.open("a") as handle:
                        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
