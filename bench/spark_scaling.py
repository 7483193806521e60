"""`main -P engine=spark` against `-P engine=pandas` as the table grows: 1M and 3M rows on both
engines, 10M on Spark alone, on a generated 20-column table (`data.synthetic`: floats and counts
with missing values, text categories, a boolean; binary label).

Spark runs on a standalone master and worker on loopback (the worker gets the machine's cores), or
with `--master 'local[*]'` in a session inside each step, the issue's measure. Each run is the whole
pipeline (`main`, XGBoost, no cache) as `mlflow run` starts it; the figures: wall time, rows per
second, and the driver's peak memory, the summed resident memory of the `mlflow run` process tree
sampled every 0.5 s (main, the steps and, on Spark, the driver JVMs). On the standalone cluster the
executors live under the worker and are reported apart; on `local[*]` they are threads of the
driver's JVM, so its driver peak includes them and is not comparable with the cluster's.

    python -m bench.spark_scaling --rows 1000000 --master 'local[*]' --repeats 3 --output bench/spark_scaling.jsonl
    python -m bench.spark_scaling --rows 1000000,3000000 --engines pandas,spark --output bench/spark_scaling.jsonl
    python -m bench.spark_scaling --rows 10000000 --engines spark --output bench/spark_scaling.jsonl
    python -m bench.spark_scaling --report --output bench/spark_scaling.jsonl   # table and plot
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click

from bench.session import measured_commit, scratch_experiment

PROJECT_DIR = Path(__file__).resolve().parents[1]
COLUMNS = 20
TRAINING = "n_estimators=100;max_depth=6"
STANDALONE = "standalone"


def write_tables(sizes: list[int], folder: Path, seed: int = 0) -> dict[int, Path]:
    """One Parquet file per size (row groups of 1M rows): the first rows of one generated table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tabular_pipeline.data.synthetic import make_mixed_table

    table = pa.Table.from_pandas(make_mixed_table(max(sizes), COLUMNS, "binary", seed), preserve_index=False)
    paths = {}
    for rows in sizes:
        paths[rows] = folder / f"table_{rows}.parquet"
        pq.write_table(table.slice(0, rows), paths[rows], row_group_size=1_000_000)
    return paths


class TreeMemory:
    """Peak summed RSS of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.5):
        self.pid, self.interval_s, self.peak_mb = pid, interval_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                tree = [root, *root.children(recursive=True)]
                total = 0
                for process in tree:
                    try:
                        total += process.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak_mb = max(self.peak_mb, total / 2**20)
            except psutil.Error:
                pass
            self._stop.wait(self.interval_s)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_pipeline(
    engine: str, table: Path, master: str, tracking_uri: str, experiment_id: str, worker_pid: int | None
) -> dict:
    """One `main` run; returns its wall time, exit code, step times and peak memory."""
    command = [str(Path(sys.executable).parent / "mlflow"), "run", str(PROJECT_DIR), "--env-manager", "local"]
    command += ["--experiment-id", experiment_id]
    for name, value in {
        "data_path": table,
        "engine": engine,
        "spark_master": master,
        "algorithm": "xgboost",
        "params": TRAINING,
        "use_cache": "false",
    }.items():
        command += ["-P", f"{name}={value}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=tracking_uri, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_DIR)
        with TreeMemory(process.pid) as driver, TreeMemory(worker_pid or process.pid) as worker:
            code = process.wait()
        log.seek(0)
        output = log.read()
    seconds = time.monotonic() - started
    steps = {}
    for line in output.splitlines():
        if "[main]" in line and " finished run " in line:
            parts = line.split()
            steps[parts[3]] = float(parts[parts.index("in") + 1])
    if code != 0:
        sys.stderr.write(output[-3000:])
    return {
        "exit_code": code,
        "seconds": round(seconds, 1),
        "step_seconds": steps,
        "driver_peak_mb": round(driver.peak_mb),
        "executors_peak_mb": round(worker.peak_mb) if worker_pid else None,
    }


def report(records: list[dict]) -> str:
    """The Markdown table RESULTS.md quotes. Two ratios make the comparison: the time against the
    pandas engine on the same rows, and the time per million rows against the same engine's
    smallest table (1.0 is linear growth; under 1.0, fixed costs being spread)."""
    records = medians([r for r in records if r.get("exit_code") == 0])

    pandas_seconds = {(r["rows"], session(r)): r["seconds"] for r in records if r["engine"] == "pandas"}
    per_million = {}
    for r in sorted(records, key=lambda r: r["rows"]):
        per_million.setdefault(series(r), r["seconds"] / r["rows"] * 1e6)
    # "master" is the session's: on a pandas row, the session it was measured in beside Spark.
    lines = [
        "| engine | master | rows | runs | wall (s) | vs pandas | s per 1M rows vs smallest | rows/s "
        "| driver peak (MB) | executors peak (MB) | process (s) | train (s) | commit |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(records, key=lambda r: (r.get("date") or "", r.get("session") or "", r["engine"], r["rows"])):
        steps = r.get("step_seconds", {})
        pandas = pandas_seconds.get((r["rows"], session(r)))
        versus = f"{r['seconds'] / pandas:.2f}×" if pandas else "-"
        growth = r["seconds"] / r["rows"] * 1e6 / per_million[series(r)]
        lines.append(
            f"| {r['engine']} | {r.get('master', STANDALONE)} | {r['rows']:,} | {r['runs']} | {r['seconds']:.0f} | "
            f"{versus} | {growth:.2f} | "
            f"{r['rows'] / r['seconds']:,.0f} | {r['driver_peak_mb']:,} | {r.get('executors_peak_mb') or '-'} | "
            f"{steps.get('process', 0):.0f} | {steps.get('train_basic', 0):.0f} | {r.get('commit', '-')} |"
        )
    return "\n".join(lines)


def session(r: dict) -> tuple:
    """Runs are compared within one invocation of this script (its `session`; older records, by day
    and commit): the code, the machine and the master change between them."""
    return (r["session"],) if r.get("session") else (r.get("date"), r.get("commit"))


def series(r: dict) -> tuple:
    """Runs that make one line as the table grows: an engine and master on one commit and day,
    whichever invocations they came from (`make bench-spark` runs 10M rows in its own)."""
    day = r["session"][:10] if r.get("session") else r.get("date") or ""  # a session starts with its time
    return r["engine"], r.get("master", STANDALONE), r.get("commit") or "", day


def medians(records: list[dict]) -> list[dict]:
    """One record per engine, rows and session: the median wall and step times of its runs (single
    runs of the same code varied by about 10%), the highest memory peaks, and how many runs."""
    from bench.stats import median  # the other benchmarks' median

    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["engine"], r["rows"], session(r)), []).append(r)
    combined = []
    for runs in groups.values():
        timed = [r.get("step_seconds", {}) for r in runs]
        steps = {name for step_seconds in timed for name in step_seconds}
        executors = [r["executors_peak_mb"] for r in runs if r.get("executors_peak_mb")]
        combined.append(
            {
                **runs[0],
                "runs": len(runs),
                "seconds": median([r["seconds"] for r in runs]),
                "step_seconds": {n: median([t[n] for t in timed if n in t]) for n in steps},
                "driver_peak_mb": max(r["driver_peak_mb"] for r in runs),
                "executors_peak_mb": max(executors) if executors else None,
            }
        )
    return combined


def plot(records: list[dict], path: Path) -> list[tuple[str, str]]:
    """Wall time and driver memory against rows: the oldest day's runs (dashed, the first figures
    recorded) and the newest commit's, one line per `series`. The memory panel leaves out local
    masters, whose driver JVM also runs the executors; the table has every run. The newest commit is
    the last record's (records of older code measured later go before it in the file).

    Returns:
        (label, line style) of each line drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(10, 4))
    finished = [r for r in records if r.get("exit_code") == 0]
    records, newest = [], None  # nothing finished: empty axes
    if finished:
        first_day, newest = min(r.get("date") or "" for r in finished), finished[-1].get("commit")
        records = [r for r in medians(finished) if r.get("commit") == newest or (r.get("date") or "") == first_day]
    keys = sorted({series(r) for r in records}, key=lambda key: (key[3], key[2], key[1], key[0]))
    for number, key in enumerate(keys):
        mine = sorted((r for r in records if series(r) == key), key=lambda r: r["rows"])
        rows = [r["rows"] / 1e6 for r in mine]
        label = " ".join(part for part in key if part)
        style = {"marker": "o", "label": label, "color": f"C{number}", "linestyle": "-" if key[2] == newest else "--"}
        time_axis.plot(rows, [r["seconds"] for r in mine], **style)
        if not key[1].startswith("local"):
            memory_axis.plot(rows, [r["driver_peak_mb"] / 1024 for r in mine], **style)
    time_axis.set(xlabel="rows (millions)", ylabel="pipeline wall time (s)", title="Time")
    memory_axis.set(xlabel="rows (millions)", ylabel="driver peak memory (GB)", title="Driver memory (standalone)")
    memory_axis.axhline(2, color="grey", linestyle="--", linewidth=1)
    for axis in (time_axis, memory_axis):
        axis.grid(alpha=0.3)
        if keys:
            axis.legend(fontsize="x-small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return [(line.get_label(), line.get_linestyle()) for line in time_axis.get_lines()]


@click.command()
@click.option("--rows", default="1000000,3000000", show_default=True, help="Comma-separated table sizes.")
@click.option("--engines", default="pandas,spark", show_default=True)
@click.option("--output", type=click.Path(path_type=Path), default=Path("bench/spark_scaling.jsonl"))
@click.option(
    "--master",
    default=STANDALONE,
    show_default=True,
    help=f"'{STANDALONE}' (a master and worker started on loopback), or a local master such as 'local[*]'.",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs of each engine and size; the report takes medians.",
)
@click.option("--report", "report_only", is_flag=True, help="Print the table and draw the plot from --output.")
def main(rows: str, engines: str, output: Path, master: str, repeats: int, report_only: bool) -> None:
    if report_only:
        records = [json.loads(line) for line in output.read_text().splitlines() if line.strip()]
        click.echo(report(records))
        plot(records, output.with_suffix(".png"))
        click.echo(f"plot: {output.with_suffix('.png')}")
        return
    if master != STANDALONE and not re.fullmatch(r"local(\[(\*|\d+)\])?", master):
        raise click.BadParameter(f"expected '{STANDALONE}' or local[...], got '{master}'", param_hint="--master")
    sizes = [int(size) for size in rows.split(",")]
    with tempfile.TemporaryDirectory(prefix="spark-bench-") as scratch:
        folder = Path(scratch)
        tables = write_tables(sizes, folder)
        tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
        experiment_id = scratch_experiment(tracking_uri, "spark-scaling", folder)
        with spark_master(master, folder) as (url, worker):
            commit = measured_commit()  # the code that is timed, before anything can change under the run
            label = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {commit} {master}"
            day = time.strftime("%Y-%m-%d")  # the session's day, also for runs after midnight
            # Engines alternate within each repeat, so a machine that slows down slows both.
            for repeat, size, engine in itertools.product(range(repeats), sizes, engines.split(",")):
                record = {"engine": engine, "rows": size, "columns": COLUMNS, "training": TRAINING,
                          "date": day, "commit": commit, "master": master,
                          "session": label, "repeat": repeat}  # fmt: skip
                record.update(
                    run_pipeline(
                        engine, tables[size], url, tracking_uri, experiment_id, worker if engine == "spark" else None
                    )
                )
                click.echo(json.dumps(record))
                with output.open("a") as sink:
                    sink.write(json.dumps(record) + "\n")


@contextlib.contextmanager
def spark_master(master: str, folder: Path):
    """The master URL the runs get, and the pid of the worker whose executors are measured apart
    (None for a local master, whose executors are threads of the driver's JVM)."""
    if master != STANDALONE:
        yield master, None
        return
    import psutil

    from tests.conftest import standalone_spark_cluster

    (folder / "cluster").mkdir()
    with standalone_spark_cluster(folder / "cluster", cores=os.cpu_count() or 2, memory="8g") as (url, _):
        worker = next(
            (
                p.pid
                for p in psutil.process_iter(["cmdline"])
                if "deploy.worker.Worker" in " ".join(p.info["cmdline"] or [])
            ),
            None,
        )
        yield url, worker


if __name__ == "__main__":
    main()
