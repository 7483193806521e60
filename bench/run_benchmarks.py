"""Run the benchmarks and write `bench/RESULTS.md`: every figure is a ratio against a baseline
measured in the same run, from the median of several repetitions.

    make bench                                  # full sizes (about 25 minutes on 2 cores)
    python -m bench.run_benchmarks --quick      # tiny sizes: proves the script runs

It starts its own `mlflow server` (SQLite) on a free loopback port in a scratch folder, so it
never touches the user's tracking store.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click

from bench.generate_table import write_table
from bench.stats import markdown_table, median, percentile, ratio

PROJECT_DIR = Path(__file__).resolve().parents[1]
BENCH_DIR = PROJECT_DIR / "bench"
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
BUNDLED_DATA = PROJECT_DIR / "data" / "breast_cancer.csv"
RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass(frozen=True)
class Sizes:
    """How big and how often: the full run and the smoke run differ only here."""

    repeats: int
    large_rows: int
    batch_rows: int
    automl_rows: int
    automl_budget: float
    requests: int


FULL = Sizes(repeats=3, large_rows=300_000, batch_rows=1_000_000, automl_rows=20_000, automl_budget=60, requests=300)
QUICK = Sizes(repeats=1, large_rows=2_000, batch_rows=5_000, automl_rows=1_000, automl_budget=2, requests=20)


def log(message: str) -> None:
    print(f"{datetime.now():%H:%M:%S} [bench] {message}", file=sys.stderr, flush=True)


class Bench:
    """One benchmark session: a tracking server, a scratch folder, and helpers to run things."""

    def __init__(self, scratch: Path, tracking_uri: str):
        self.scratch, self.tracking_uri = scratch, tracking_uri
        self.bin = Path(sys.executable).parent

    def env(self) -> dict[str, str]:
        from tests.conftest import subprocess_env

        return subprocess_env(self.tracking_uri)

    def timed(self, command: list[str]) -> tuple[float, str]:
        """Run a command to completion; return its wall time and standard output, or stop on failure."""
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=self.env(), cwd=PROJECT_DIR)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise click.ClickException(f"{' '.join(command[:6])} ... failed:\n{(done.stdout + done.stderr)[-3000:]}")
        return seconds, done.stdout

    def mlflow_run(self, entry_point: str, params: dict[str, object], experiment: str) -> tuple[float, str]:
        from tests.conftest import project_command

        return self.timed(project_command(entry_point, params, experiment))

    def python(self, module: str, *args: str) -> tuple[float, str]:
        return self.timed([sys.executable, "-m", module, *args])

    def latest_run(self, experiment: str, entry_point: str):
        from mlflow import MlflowClient

        client = MlflowClient(self.tracking_uri)
        found = client.get_experiment_by_name(experiment)
        runs = client.search_runs(
            [found.experiment_id],
            f"tags.`pipeline.entry_point` = '{entry_point}'",
            order_by=["start_time DESC"],
            max_results=1,
        )
        return runs[0]


def pipeline_overhead(
    bench: Bench, sizes: Sizes, datasets: dict[str, Path], quick: bool = False
) -> tuple[str, dict[str, str]]:
    """Benchmark 1 and 2: `main` (cache off, then cached) against one plain script.

    With `quick`, the cache-filling run (a fresh experiment, so every step runs) stands in for the
    cache-off runs: the smoke test then runs `main` twice instead of three times.
    """
    rows, models = [], {}
    cached_rows = []
    for label, path in datasets.items():
        pipeline, plain, cached = [], [], []
        experiment = f"bench-{uuid.uuid4().hex[:8]}"
        model_name = f"bench-{label}"
        for repeat in range(sizes.repeats):
            if not quick:
                seconds, _ = bench.mlflow_run(
                    "main", {"data_path": path, "use_cache": "false", "model_name": model_name}, experiment
                )
                pipeline.append(seconds)
            plain_args = [
                "--data_path",
                str(path),
                "--model_name",
                f"{model_name}-plain",
                "--experiment_name",
                f"{experiment}-plain",
            ]
            seconds, _ = bench.python("bench.plain_pipeline", *plain_args)
            plain.append(seconds)
            log(
                f"overhead {label} #{repeat + 1}: pipeline {pipeline[-1] if pipeline else float('nan'):.1f} s, "
                f"plain script {plain[-1]:.1f} s"
            )
        # Cache-off runs record no cache key, so one cache-on run fills the cache; the reruns then reuse every step.
        seconds, _ = bench.mlflow_run("main", {"data_path": path, "model_name": model_name}, experiment)
        if quick:
            pipeline.append(seconds)
        for repeat in range(sizes.repeats):
            seconds, _ = bench.mlflow_run("main", {"data_path": path, "model_name": model_name}, experiment)
            cached.append(seconds)
            log(f"cached {label} #{repeat + 1}: {seconds:.1f} s")
        main_run = bench.latest_run(experiment, "main")
        models[label] = f"models:/{model_name}@production"
        rows.append([label, median(pipeline), median(plain), ratio(median(pipeline), median(plain))])
        reused = main_run.data.tags.get("pipeline.steps_reused", "")
        cached_rows.append([label, median(pipeline), median(cached), ratio(median(cached), median(pipeline)), reused])
    table = markdown_table(["table", "main, cache off (s)", "plain script (s)", "ratio (target ≤ 1.5 on 300k)"], rows)
    cached_table = markdown_table(
        ["table", "full run (s)", "cached rerun (s)", "ratio (target < 0.10)", "steps reused"], cached_rows
    )
    text = f"### 1. Pipeline overhead\n\n{table}\n\n### 2. Cached rerun\n\n{cached_table}\n"
    return text, models


def automl_quality(bench: Bench, sizes: Sizes, data: Path) -> str:
    """Benchmark 3: `train_automl` (FLAML) against FLAML's `AutoML.fit` called directly."""
    step_scores, direct_scores, step_seconds, direct_seconds = [], [], [], []
    experiment = f"bench-automl-{uuid.uuid4().hex[:8]}"
    for repeat in range(sizes.repeats):
        seconds, _ = bench.mlflow_run(
            "train_automl", {"data_path": data, "time_budget": sizes.automl_budget}, experiment
        )
        run = bench.latest_run(experiment, "train_automl")
        step_scores.append(run.data.metrics["test_roc_auc"])
        step_seconds.append(seconds)
        seconds, output = bench.python(
            "bench.direct_flaml", "--data_path", str(data), "--time_budget", str(sizes.automl_budget)
        )
        direct = json.loads(output.strip().splitlines()[-1])
        direct_scores.append(direct["test_roc_auc"])
        direct_seconds.append(seconds)
        log(f"automl #{repeat + 1}: step AUC {step_scores[-1]:.4f}, direct AUC {direct_scores[-1]:.4f}")
    difference = median(step_scores) - median(direct_scores)
    table = markdown_table(
        ["", "test ROC AUC (median)", "wall time (s)"],
        [
            ["train_automl (FLAML)", median(step_scores), median(step_seconds)],
            ["AutoML.fit directly", median(direct_scores), median(direct_seconds)],
        ],
    )
    return (
        f"### 3. AutoML quality at equal budget ({sizes.automl_budget:g} s, {sizes.automl_rows:,} generated "
        f"rows)\n\n{table}\n\n"
        f"AUC difference (step − direct): {difference:+.4f} (target: |difference| ≤ 0.005). "
        f"Wall-time ratio: {ratio(median(step_seconds), median(direct_seconds)):.2f}.\n"
    )


def served_row(model_uri: str, tracking_uri: str, data: Path):
    """The model (loaded in-process) and one input row, cast to the model's schema."""
    import mlflow

    from tabular_pipeline.data.tables import read_table
    from tabular_pipeline.scoring.batch import arrow_feature_schema, cast_features, input_columns

    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(model_uri)
    import pyarrow as pa

    row = read_table(data).drop(columns=["label"]).head(1)
    schema = arrow_feature_schema(input_columns(model.metadata.get_input_schema()))
    return model, cast_features(pa.Table.from_pandas(row, preserve_index=False), schema).to_pandas()


def serving_latency(bench: Bench, sizes: Sizes, model_uri: str, data: Path) -> str:
    """Benchmark 4: one-row `/invocations` against in-process `model.predict` on the same row."""
    import requests

    from tests.conftest import free_port, stop_process, wait_until_healthy

    model, row = served_row(model_uri, bench.tracking_uri, data)
    in_process = []
    for _ in range(sizes.requests):
        started = time.perf_counter()
        model.predict(row)
        in_process.append(time.perf_counter() - started)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
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
        env=bench.env(),
        cwd=bench.scratch,
    )
    payload = json.dumps({"dataframe_split": json.loads(row.to_json(orient="split", index=False))})
    headers = {"Content-Type": "application/json"}
    try:
        wait_until_healthy(url, server, 180, path="/ping")
        session = requests.Session()
        for _ in range(10):
            session.post(f"{url}/invocations", data=payload, headers=headers, timeout=30).raise_for_status()
        latencies = []
        for _ in range(sizes.requests):
            started = time.perf_counter()
            session.post(f"{url}/invocations", data=payload, headers=headers, timeout=30).raise_for_status()
            latencies.append(time.perf_counter() - started)
        local = threading.local()

        def one_request(_):
            local.session = getattr(local, "session", None) or requests.Session()
            local.session.post(f"{url}/invocations", data=payload, headers=headers, timeout=60).raise_for_status()

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one_request, range(sizes.requests * 2)))
        rps = sizes.requests * 2 / (time.perf_counter() - started)
    finally:
        stop_process(server)
    ms = 1000.0
    table = markdown_table(
        ["", "p50 (ms)", "p99 (ms)"],
        [
            ["`mlflow models serve` /invocations", median(latencies) * ms, percentile(latencies, 0.99) * ms],
            ["in-process `model.predict`", median(in_process) * ms, percentile(in_process, 0.99) * ms],
            [
                "ratio",
                ratio(median(latencies), median(in_process)),
                ratio(percentile(latencies, 0.99), percentile(in_process, 0.99)),
            ],
        ],
    )
    return (
        f"### 4. Serving ({model_uri}, {sizes.requests} one-row requests)\n\n{table}\n\n"
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


def write_results(sections: list[str], sizes: Sizes, output: Path, seconds: float) -> None:
    """Replace the measured part of the results file, keeping the hand-written analysis around it."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=PROJECT_DIR
    ).stdout.strip()
    import os

    header = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit or 'unknown'}, Python "
        f"{platform.python_version()}, "
        f"{os.cpu_count()} cores; medians of {sizes.repeats} repetition(s); whole run {seconds / 60:.1f} min.\n"
    )
    body = "\n".join([RESULTS_START, header, *sections, RESULTS_END])
    existing = output.read_text() if output.is_file() else ""
    if RESULTS_START in existing and RESULTS_END in existing:
        before, rest = existing.split(RESULTS_START, 1)
        after = rest.split(RESULTS_END, 1)[1]
        text = before + body + after
    else:
        text = f"# Benchmark results\n\n{body}\n"
    output.write_text(text)


@contextmanager
def tracking_server(scratch: Path, existing: str):
    """The given tracking server, or a fresh `mlflow server` (SQLite) on a free loopback port."""
    from tests.conftest import BIN_DIR, free_port, stop_process, subprocess_env, wait_until_healthy

    if existing:
        yield existing
        return
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(BIN_DIR / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{scratch / 'mlflow.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(scratch / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=subprocess_env(""),
        cwd=scratch,
    )
    try:
        wait_until_healthy(url, server, 120)
        yield url
    finally:
        stop_process(server)


@click.command()
@click.option("--quick", is_flag=True, help="Tiny sizes and one repetition: checks that everything runs.")
@click.option("--repeats", type=int, default=None, help="Repetitions per measurement (default 3, 1 with --quick).")
@click.option("--output", type=click.Path(path_type=Path), default=RESULTS_FILE, show_default=True)
@click.option(
    "--only", default="overhead,automl,serving,batch,monitoring", show_default=True, help="Which benchmarks to run."
)
@click.option(
    "--tracking_uri", default="", help="Use this tracking server instead of starting one (the smoke test does)."
)
def main(quick: bool, repeats: int | None, output: Path, only: str, tracking_uri: str) -> None:
    """Measure pipeline overhead, cached reruns, AutoML quality, serving and batch scoring."""
    sizes = QUICK if quick else FULL
    if repeats:
        sizes = Sizes(
            repeats, sizes.large_rows, sizes.batch_rows, sizes.automl_rows, sizes.automl_budget, sizes.requests
        )
    chosen = {name.strip() for name in only.split(",")}
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as scratch_dir,
        tracking_server(Path(scratch_dir), tracking_uri) as url,
    ):
        scratch = Path(scratch_dir)
        bench = Bench(scratch, url)
        log(f"tracking server {url}; scratch {scratch}")
        large = write_table(sizes.large_rows, 30, "binary", 0, scratch / "large.csv")
        # The smoke run skips the bundled table: the generated one exercises the same code.
        datasets = {"generated": large} if quick else {"bundled": BUNDLED_DATA, f"{sizes.large_rows // 1000}k": large}
        serving_data, batch_data = next(iter(datasets)), list(datasets)[-1]
        sections, models = [], {}
        if chosen & {"overhead", "serving", "batch"}:
            text, models = pipeline_overhead(bench, sizes, datasets, quick)
            if "overhead" in chosen:
                sections.append(text)
        if "automl" in chosen:
            sections.append(
                automl_quality(bench, sizes, write_table(sizes.automl_rows, 30, "binary", 3, scratch / "automl.csv"))
            )
        if "serving" in chosen:
            sections.append(serving_latency(bench, sizes, models[serving_data], datasets[serving_data]))
        if "batch" in chosen:
            sections.append(batch_scoring(bench, sizes, models[batch_data]))
        if "monitoring" in chosen:
            sections.append(monitoring_cost(bench, sizes))
    write_results(sections, sizes, output, time.monotonic() - started)
    log(f"results written to {output}")


if __name__ == "__main__":
    main()
