"""FLAML against AutoGluon at equal budgets, through this project's own search code, on three
generated tables (binary, multiclass, regression; text categories and missing values in each).

For each table, tool and budget it prints one JSON line: the test score of the project's primary
metric, the wall time of the search and the model logging, and the one-row latency of the model as
`train_automl` logs it: through `mlflow models serve` (HTTP, `--env-manager local`) and through `mlflow.pyfunc` in
process, p50 and p95 each. Both tools get the same train/test split, the same screened columns and
the same metric.

    python -m bench.automl_tools --budgets 60,300 --rows 20000 --output /tmp/automl_tools.jsonl
    python -m bench.automl_tools --report --output /tmp/automl_tools.jsonl   # the tables for RESULTS.md
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from statistics import median

import click
import numpy as np

from bench.session import measured_commit, scratch_experiment

TASKS = ("binary", "multiclass", "regression")
# `--presets` for train_automl's default, which names no preset (`BUDGET_DEFAULTS` in autogluon_settings).
DEFAULT_PRESETS = "default"


def percentiles_ms(timings: list[float]) -> tuple[float, float]:
    """p50 and p95 of timings in seconds, in milliseconds."""
    return median(timings) * 1000, float(np.percentile(timings, 95)) * 1000


def in_process_latency(model, rows, requests: int) -> tuple[float, float]:
    """p50 and p95 of the pyfunc model's `predict` on one row at a time, after ten warm-up calls."""
    for index in range(10):
        model.predict(rows.iloc[[index]])
    timings = []
    for index in range(requests):
        row = rows.iloc[[index % len(rows)]]
        started = time.perf_counter()
        model.predict(row)
        timings.append(time.perf_counter() - started)
    return percentiles_ms(timings)


def http_latency(model_uri: str, tracking_uri: str, rows, requests: int, log_path: Path) -> tuple[float, float]:
    """p50 and p95 of one-row `/invocations` requests to `mlflow models serve`, after ten warm-ups;
    the server's output goes to `log_path` (in the cell's scratch folder, removed with it)."""
    import os
    import subprocess
    import sys

    import requests as http

    from tests.conftest import free_port, stop_process, wait_until_healthy

    port = free_port()
    server_log = log_path.open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
        + ["--host", "127.0.0.1", "--port", str(port)],
        stdout=server_log,
        stderr=subprocess.STDOUT,
        # The scoring server starts `uvicorn` by name: this interpreter's scripts go first on PATH.
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        },
    )
    url = f"http://127.0.0.1:{port}/invocations"
    payloads = [json.dumps({"dataframe_split": json.loads(rows.iloc[[i]].to_json(orient="split", index=False))})
                for i in range(len(rows))]  # fmt: skip
    headers = {"Content-Type": "application/json"}
    try:
        try:
            wait_until_healthy(f"http://127.0.0.1:{port}", server, 300, path="/ping")
        except RuntimeError:
            raise RuntimeError(log_path.read_text()[-3000:]) from None
        session = http.Session()
        for index in range(10):
            session.post(url, data=payloads[index], headers=headers, timeout=60).raise_for_status()
        timings = []
        for index in range(requests):
            started = time.perf_counter()
            session.post(url, data=payloads[index % len(payloads)], headers=headers, timeout=60).raise_for_status()
            timings.append(time.perf_counter() - started)
    finally:
        stop_process(server)
        server_log.close()
    return percentiles_ms(timings)


def served_rows(model, test_x, count: int = 50):
    """`count` test rows cast to the model's input schema, as a client would send them."""
    import pyarrow as pa

    from tabular_pipeline.scoring.batch import arrow_feature_schema, cast_features, input_columns

    schema = arrow_feature_schema(input_columns(model.metadata.get_input_schema()))
    table = pa.Table.from_pandas(test_x.head(count).reset_index(drop=True), preserve_index=False)
    return cast_features(table, schema).to_pandas()


def fit_flaml(train, label: str, kept: list[str], task: str, budget: float, seed: int, scratch: Path):
    """The train_automl FLAML path: the project's preprocessing, FLAML's search, the servable pipeline,
    logged as train_automl logs it; returns (model URI, best learner, the fitted pipeline, no details)."""
    from sklearn.preprocessing import LabelEncoder

    from tabular_pipeline.training.automl.flaml_search import (
        LIBRARY_OF_LEARNER,
        assemble_pipeline,
        flaml_settings,
        run_search,
    )
    from tabular_pipeline.training.model_logging import log_pipeline_model
    from tabular_pipeline.training.pipelines import build_preprocessor, split_feature_columns

    features, target = train.drop(columns=[label]), train[label]
    preprocessor = build_preprocessor("lightgbm", split_feature_columns(features[kept])).fit(features)
    encoder = LabelEncoder().fit(target) if task != "regression" else None
    coded = encoder.transform(target) if encoder is not None else target.to_numpy()
    settings = flaml_settings({}, budget, task, seed)
    automl = run_search(preprocessor.transform(features), coded, settings, scratch / "flaml.log")
    model = assemble_pipeline(preprocessor, automl.model.estimator, encoder, task)
    library = LIBRARY_OF_LEARNER.get(automl.best_estimator, "")
    return log_pipeline_model(model, features, library).model_uri, automl.best_estimator, model, {}


def fit_autogluon(train, label: str, kept: list[str], task: str, budget: float, scratch: Path, presets: str):
    """The train_automl AutoGluon path, logged as train_automl logs it; returns (model URI, best model,
    the predictor's scikit-learn view, the folds it bagged in for the record)."""
    from tabular_pipeline.serving.autogluon import as_estimator, quiet_gpu_check
    from tabular_pipeline.training.automl.autogluon_search import run_search
    from tabular_pipeline.training.automl.autogluon_settings import autogluon_settings
    from tabular_pipeline.training.model_logging import log_autogluon_model

    quiet_gpu_check()
    params = {} if presets == DEFAULT_PRESETS else {"presets": presets}
    settings = autogluon_settings(params, budget, task, training_rows=len(train))
    predictor, outcome = run_search(train[[*kept, label]], label, task, settings, scratch)
    features = train.drop(columns=[label])
    estimator = as_estimator(predictor)
    logged = log_autogluon_model(estimator, outcome.predictor_dir, outcome.libraries, features)
    return logged.model_uri, outcome.best_model, estimator, {"bag_folds_used": outcome.bag_folds_used}


# The report's order within a table and budget: the default, then AutoGluon's presets.
PRESET_ORDER = (DEFAULT_PRESETS, "medium_quality", "good_quality", "high_quality", "best_quality", "")


def preset_of(record: dict) -> str:
    """The AutoGluon preset a record ran (records before --presets existed ran medium_quality)."""
    if record["tool"] == "flaml":
        return ""
    return record["tool"].partition(":")[2] or "medium_quality"


def markdown_report(records: list[dict]) -> str:
    """Scores and wall times side by side, then latencies, one row per table and budget."""
    from bench.stats import markdown_table

    def same_table(record: dict) -> tuple:
        return record["task"], record["rows"], record["columns"], record["budget_s"]

    flaml_runs = {same_table(r): r for r in records if r["tool"] == "flaml"}
    score_rows, latency_rows = [], []
    ordered = sorted(records, key=lambda r: (TASKS.index(r["task"]), r["budget_s"], PRESET_ORDER.index(preset_of(r))))
    for autogluon in (r for r in ordered if r["tool"] != "flaml"):
        task, budget = autogluon["task"], autogluon["budget_s"]
        preset = preset_of(autogluon)
        flaml = flaml_runs.get(same_table(autogluon))
        if flaml is None:
            click.echo(f"no FLAML run to compare with: {json.dumps(autogluon)}", err=True)
            continue
        higher_is_better = flaml["metric"] != "test_rmse"
        better = autogluon["score"] >= flaml["score"] if higher_is_better else autogluon["score"] <= flaml["score"]
        score_rows.append(
            [task, f"{budget:g}", flaml["metric"], f"{flaml['score']:.4f}", f"{autogluon['score']:.4f}", preset,
             "yes" if better else "no", f"{flaml['train_wall_s']:.0f}", f"{autogluon['train_wall_s']:.0f}",
             f"{autogluon['train_wall_s'] / budget:.3f}", f"{flaml['best']} / {autogluon['best']}",
             autogluon.get("commit", "-")]
        )  # fmt: skip
        latency_rows.append(
            [task, f"{budget:g}", preset, f"{flaml['http_p50_ms']:.1f}", f"{autogluon['http_p50_ms']:.1f}",
             f"{autogluon['http_p50_ms'] / flaml['http_p50_ms']:.2f}", f"{flaml['in_process_p50_ms']:.1f}",
             f"{autogluon['in_process_p50_ms']:.1f}", f"{flaml['http_p95_ms']:.1f}", f"{autogluon['http_p95_ms']:.1f}"]
        )  # fmt: skip
    scores = markdown_table(
        ["table", "budget (s)", "metric", "FLAML", "AutoGluon", "AutoGluon preset", "AutoGluon as good",
         "FLAML wall (s)", "AutoGluon wall (s)", "AutoGluon wall / budget (target: most of it, ≤ 1.1)",
         "best (FLAML / AutoGluon)", "commit"],
        score_rows,
    )  # fmt: skip
    latencies = markdown_table(
        ["table", "budget (s)", "AutoGluon preset", "FLAML HTTP p50 (ms)", "AutoGluon HTTP p50 (ms)", "ratio",
         "FLAML in-process p50",
         "AutoGluon in-process p50", "FLAML HTTP p95", "AutoGluon HTTP p95"],
        latency_rows,
    )  # fmt: skip
    return f"{scores}\n\n{latencies}\n"


@click.command()
@click.option("--report", is_flag=True, help="Print the markdown tables of the records in --output, and stop.")
@click.option("--budgets", default="60,300", show_default=True, help="Seconds, comma-separated.")
@click.option("--rows", type=int, default=20_000, show_default=True)
@click.option("--columns", type=int, default=20, show_default=True)
@click.option("--tasks", default=",".join(TASKS), show_default=True)
@click.option("--requests", type=int, default=200, show_default=True, help="One-row predictions timed per model.")
@click.option(
    "--presets", default=DEFAULT_PRESETS, show_default=True, help="AutoGluon's preset, or train_automl's default."
)
@click.option("--tools", default="flaml,autogluon", show_default=True)
@click.option("--output", type=click.Path(path_type=Path), required=True, help="JSON lines, appended.")
def main(
    report: bool,
    budgets: str,
    rows: int,
    columns: int,
    tasks: str,
    requests: int,
    presets: str,
    tools: str,
    output: Path,
) -> None:
    """Fit both tools at each budget on each table and append one JSON line per fit."""
    if report:
        click.echo(markdown_report([json.loads(line) for line in output.read_text().splitlines()]))
        return
    unknown = set(tools.split(",")) - {"flaml", "autogluon"}
    if unknown:
        raise click.BadParameter(f"{sorted(unknown)}; expected flaml and/or autogluon", param_hint="--tools")
    import os

    import mlflow

    from tabular_pipeline.data.screening import screen_columns
    from tabular_pipeline.data.splits import prepare_splits
    from tabular_pipeline.data.synthetic import make_mixed_table
    from tabular_pipeline.data.tables import locate_table
    from tabular_pipeline.evaluation.metrics import PRIMARY_METRIC, evaluate_model

    seed = 1
    for task in tasks.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-automl-") as scratch_dir:
            scratch = Path(scratch_dir)
            tracking_uri = f"sqlite:///{scratch / 'mlflow.db'}"
            os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
            mlflow.set_experiment(experiment_id=scratch_experiment(tracking_uri, "bench-automl", scratch))
            table_file = scratch / f"{task}.parquet"
            make_mixed_table(rows, columns, task, seed=7).to_parquet(table_file, index=False)
            splits, _ = prepare_splits(locate_table(table_file), "label", 0.25, seed, task)
            kept, _ = screen_columns(splits.train.drop(columns=["label"]))
            test_x, test_y = splits.test.drop(columns=["label"]), splits.test["label"]
            commit = measured_commit()  # the code that is timed, before anything can change under the run
            for budget in (float(value) for value in budgets.split(",")):
                for tool in tools.split(","):
                    workdir = scratch / f"{tool}-{budget:g}"
                    workdir.mkdir()
                    with mlflow.start_run():
                        started = time.monotonic()
                        if tool == "flaml":
                            fitted = fit_flaml(splits.train, "label", kept, task, budget, seed, workdir)
                        else:
                            fitted = fit_autogluon(splits.train, "label", kept, task, budget, workdir, presets)
                        model_uri, best, estimator, details = fitted
                        seconds = time.monotonic() - started
                    metric = PRIMARY_METRIC[task]
                    score = evaluate_model(estimator, test_x, test_y, task)[metric]
                    model = mlflow.pyfunc.load_model(model_uri)
                    rows_sent = served_rows(model, test_x)
                    local_p50, local_p95 = in_process_latency(model, rows_sent, requests)
                    served = http_latency(model_uri, tracking_uri, rows_sent, requests, workdir / "serve.log")
                    http_p50, http_p95 = served
                    record = {
                        "task": task, "rows": rows, "columns": columns, "budget_s": budget, "commit": commit,
                        "tool": tool if tool == "flaml" else f"autogluon:{presets}",
                        "metric": metric, "score": score, "train_wall_s": seconds, "best": best,
                        "http_p50_ms": http_p50, "http_p95_ms": http_p95,
                        "in_process_p50_ms": local_p50, "in_process_p95_ms": local_p95, **details,
                    }  # fmt: skip
                    click.echo(json.dumps(record))
                    with output.open("a") as handle:
                        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
