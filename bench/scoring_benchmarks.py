"""Benchmarks 4 to 6: one-row serving latency, batch scoring on both engines, and the cost of
drift counting, each against in-process scoring of the same rows."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.generate_table import write_table
from bench.session import Bench, Sizes, log, quiet_mlflow
from bench.stats import markdown_table, median, percentile, ratio


def served_row(model_uri: str, tracking_uri: str, data: Path):
    """The model (loaded in-process) and one input row, cast to the model's schema."""
    import mlflow

    from tabular_pipeline.data.tables import read_table
    from tabular_pipeline.scoring.batch import arrow_feature_schema, cast_features, input_columns

    mlflow.set_tracking_uri(tracking_uri)
    with quiet_mlflow():
        model = mlflow.pyfunc.load_model(model_uri)
    import pyarrow as pa

    row = read_table(data).drop(columns=["label"]).head(1)
    schema = arrow_feature_schema(input_columns(model.metadata.get_input_schema()))
    return model, cast_features(pa.Table.from_pandas(row, preserve_index=False), schema).to_pandas()


# A model that answers zeros, served with the benchmarked model's input schema: what MLflow's
# server costs per request (HTTP, JSON parsing, casting to the schema) before any model runs.
FLOOR_MODEL_CODE = """
import mlflow
import pandas as pd


class Zeros(mlflow.pyfunc.PythonModel):
    # The project's models' hint: MLflow validates nothing by it (and asks for a hint without one).
    def predict(self, context, model_input: pd.DataFrame, params=None):
        return pd.DataFrame({"prediction": [0] * len(model_input)})


mlflow.models.set_model(Zeros())
"""


def log_floor_model(bench: Bench, input_schema) -> str:
    """Log the zeros model (`FLOOR_MODEL_CODE`) with `input_schema` and return its model URI."""
    import mlflow
    from mlflow.models import ModelSignature

    code = bench.scratch / "floor_model.py"
    code.write_text(FLOOR_MODEL_CODE)
    mlflow.set_tracking_uri(bench.tracking_uri)  # the URI `served_row` already set
    # Its own experiment, without making it the process's active one for what runs after.
    experiment_id = mlflow.MlflowClient().create_experiment(f"bench-{uuid.uuid4().hex[:8]}-serving-floor")
    with quiet_mlflow(), mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pyfunc.log_model(
            name="floor", python_model=str(code), signature=ModelSignature(inputs=input_schema), pip_requirements=[]
        )
    return info.model_uri


# uvicorn's pure-Python event loop and HTTP parser: what it runs on without uvloop and httptools
# (requirements.txt installs both), chosen through uvicorn's own settings.
PURE_PYTHON_UVICORN = {"UVICORN_LOOP": "asyncio", "UVICORN_HTTP": "h11"}
FAST_UVICORN_MODULES = ("uvloop", "httptools")


def loaded_modules(pid: int, names: tuple[str, ...]) -> set[str]:
    """Which of the packages `names` the process `pid` or its children have loaded (their compiled
    modules among the processes' memory maps): what the server really runs on."""
    import psutil

    root = psutil.Process(pid)
    loaded = set()
    for process in [root, *root.children(recursive=True)]:
        try:
            paths = [mapping.path for mapping in process.memory_maps()]
        except psutil.Error:  # gone, or not ours to read
            continue
        loaded |= {name for name in names for path in paths if f"/{name}/" in path}
    return loaded


def served_latencies(
    bench: Bench,
    model_uri: str,
    payload: str,
    requests_count: int,
    extra_env: dict[str, str] | None = None,
    concurrency: bool = True,
) -> tuple[list[float], float]:
    """Serve `model_uri` with `mlflow models serve` (its environment without uvicorn settings, plus
    `extra_env`) and time one-row requests: the latencies of `requests_count` requests one after
    another, and (with `concurrency`) the requests per second at concurrency 8. Stops the run when
    the server's loop and parser are not the ones `extra_env` asks for."""
    import click
    import requests

    from tests.conftest import free_port, stop_process, wait_until_healthy

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {name: value for name, value in bench.env().items() if not name.startswith("UVICORN_")}
    pure_python = (extra_env or {}).get("UVICORN_HTTP") == "h11"
    server = subprocess.Popen(
        [
            str(bench.bin / "mlflow"),
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**env, **(extra_env or {})},
        cwd=bench.scratch,
    )
    headers = {"Content-Type": "application/json"}
    try:
        wait_until_healthy(url, server, 180, path="/ping")
        loaded = loaded_modules(server.pid, FAST_UVICORN_MODULES)
        if loaded != (set() if pure_python else set(FAST_UVICORN_MODULES)):
            raise click.ClickException(
                f"the server of {model_uri} loaded {sorted(loaded) or 'neither'} of uvloop and httptools; expected "
                f"{'neither' if pure_python else 'both'}"
            )
        session = requests.Session()
        for _ in range(10):
            session.post(f"{url}/invocations", data=payload, headers=headers, timeout=30).raise_for_status()
        latencies = []
        for _ in range(requests_count):
            started = time.perf_counter()
            session.post(f"{url}/invocations", data=payload, headers=headers, timeout=30).raise_for_status()
            latencies.append(time.perf_counter() - started)
        rps = float("nan")
        if concurrency:
            local = threading.local()

            def one_request(_):
                local.session = getattr(local, "session", None) or requests.Session()
                local.session.post(f"{url}/invocations", data=payload, headers=headers, timeout=60).raise_for_status()

            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(one_request, range(requests_count * 2)))
            rps = requests_count * 2 / (time.perf_counter() - started)
    finally:
        stop_process(server)
    return latencies, rps


def serving_latency(bench: Bench, sizes: Sizes, model_uri: str, data: Path) -> str:
    """Benchmark 4: one-row `/invocations` against in-process `model.predict` on the same row; the
    same server on uvicorn's pure-Python loop and parser; and MLflow's own floor: the same request
    to a served model that answers zeros."""
    model, row = served_row(model_uri, bench.tracking_uri, data)
    in_process = []
    for _ in range(sizes.requests):
        started = time.perf_counter()
        model.predict(row)
        in_process.append(time.perf_counter() - started)
    payload = json.dumps({"dataframe_split": json.loads(row.to_json(orient="split", index=False))})
    latencies, rps = served_latencies(bench, model_uri, payload, sizes.requests)
    # The two servers alternate (fast, pure, pure, fast) so that a drifting machine weighs on both;
    # each row pools its two servers' requests.
    pure_python = []
    for _ in range(2):
        pure_python += served_latencies(bench, model_uri, payload, sizes.requests, PURE_PYTHON_UVICORN, False)[0]
    latencies += served_latencies(bench, model_uri, payload, sizes.requests, concurrency=False)[0]
    floor_uri = log_floor_model(bench, model.metadata.get_input_schema())
    floor, _ = served_latencies(bench, floor_uri, payload, sizes.requests)
    ms = 1000.0

    def row_of(name: str, values: list[float]) -> list:
        return [name, median(values) * ms, percentile(values, 0.99) * ms]

    table = markdown_table(
        ["", "p50 (ms)", "p99 (ms)"],
        [
            row_of("`mlflow models serve` /invocations", latencies),
            row_of("in-process `model.predict`", in_process),
            [
                "ratio",
                ratio(median(latencies), median(in_process)),
                ratio(percentile(latencies, 0.99), percentile(in_process, 0.99)),
            ],
            row_of(
                "the same, uvicorn's pure-Python loop and parser (`UVICORN_LOOP=asyncio`, `UVICORN_HTTP=h11`)",
                pure_python,
            ),
            [
                "ratio, pure-Python uvicorn",
                ratio(median(pure_python), median(in_process)),
                ratio(percentile(pure_python, 0.99), percentile(in_process, 0.99)),
            ],
            row_of("MLflow's floor: the same request to a served model that answers zeros", floor),
            [
                "floor / in-process",
                ratio(median(floor), median(in_process)),
                ratio(percentile(floor, 0.99), percentile(in_process, 0.99)),
            ],
        ],
    )
    return (
        f"### 4. Serving ({model_uri}, {sizes.requests} one-row requests per server start)\n\n{table}\n\n"
        f"Requests per second at concurrency 8: {rps:,.0f} (in-process, one thread: {1 / median(in_process):,.0f} "
        "predictions/s).\n"
    )


def batch_scoring(bench: Bench, sizes: Sizes, model_uri: str) -> str:
    """Benchmark 5: the `predict` entry point (pandas, spark) against in-process predict on the whole frame."""
    data = write_table(sizes.batch_rows, 30, "binary", 7, bench.scratch / "batch.parquet")
    experiment = f"bench-predict-{uuid.uuid4().hex[:8]}"
    results = {}
    for engine in ("pandas", "spark"):
        walls, speeds, memory = [], [], []
        for repeat in range(sizes.repeats):
            output = bench.scratch / f"scored-{engine}-{repeat}.parquet"
            seconds, _ = bench.mlflow_run(
                "predict", {"model_uri": model_uri, "data_path": data, "output": output, "engine": engine}, experiment
            )
            run = bench.latest_run(experiment, "predict")
            walls.append(sizes.batch_rows / seconds)
            speeds.append(run.data.metrics["rows_per_second"])
            memory.append(run.data.metrics.get("peak_memory_mb", float("nan")))
            log(f"batch {engine} #{repeat + 1}: {speeds[-1]:,.0f} rows/s scoring, {walls[-1]:,.0f} rows/s end to end")
        results[engine] = (median(speeds), median(walls), median(memory))
    in_process = []
    for repeat in range(sizes.repeats):
        seconds, output = bench.python("bench.in_process_scoring", "--model_uri", model_uri, "--data_path", str(data))
        in_process.append(json.loads(output.strip().splitlines()[-1]))
        log(f"batch in-process #{repeat + 1}: {in_process[-1]['rows_per_second']:,.0f} rows/s")
    baseline = median([r["rows_per_second"] for r in in_process])
    baseline_memory = median([r["peak_memory_mb"] for r in in_process])
    rows = [
        [f"`predict -P engine={engine}`", speed, wall, ratio(speed, baseline), mem]
        for engine, (speed, wall, mem) in results.items()
    ]
    rows.append(
        [
            "in-process `model.predict(frame)`",
            baseline,
            median([r["end_to_end_rows_per_second"] for r in in_process]),
            1.0,
            baseline_memory,
        ]
    )
    table = markdown_table(["", "rows/s (scoring)", "rows/s (end to end)", "scoring ratio", "peak memory (MB)"], rows)
    return f"### 5. Batch scoring ({sizes.batch_rows:,} rows, {model_uri})\n\n{table}\n"


def monitoring_cost(bench: Bench, sizes: Sizes) -> str:
    """Batch scoring with drift counting against the same loop without it (`bench/monitoring_cost.py`)."""
    log(f"monitoring cost on {sizes.batch_rows:,} rows")
    _, output = bench.python("bench.monitoring_cost", "--rows", str(sizes.batch_rows), "--repeats", str(sizes.repeats))
    result = json.loads(output.strip().splitlines()[-1])
    table = markdown_table(
        ["rows", "profiled columns", "scoring without (s)", "with drift counts (s)", "ratio (target ≤ 1.15)"],
        [
            [
                f"{result['rows']:,}",
                result["columns"],
                f"{result['without_s']:.1f}",
                f"{result['with_s']:.1f}",
                f"{result['ratio']:.2f}",
            ]
        ],
    )
    return f"### 6. Drift monitoring cost\n\n{table}\n"
