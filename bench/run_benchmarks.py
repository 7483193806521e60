"""Run the benchmarks and write `bench/RESULTS.md`: every figure is a ratio against a baseline
measured in the same run, from the median of several repetitions.

    make bench                                  # full sizes (about 25 minutes on 2 cores)
    python -m bench.run_benchmarks --quick      # tiny sizes: proves the script runs

It starts its own `mlflow server` (SQLite) on a free loopback port in a scratch folder, so it
never touches the user's tracking store.
"""

from __future__ import annotations

import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from bench.generate_table import write_table
from bench.pipeline_benchmarks import automl_quality, pipeline_overhead
from bench.scoring_benchmarks import batch_scoring, monitoring_cost, serving_latency
from bench.session import FULL, PROJECT_DIR, QUICK, Bench, Sizes, log, measured_commit, tracking_server

BENCH_DIR = PROJECT_DIR / "bench"
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
BUNDLED_DATA = PROJECT_DIR / "data" / "breast_cancer.csv"
RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"


def write_results(sections: list[str], sizes: Sizes, output: Path, seconds: float, commit: str) -> None:
    """Replace the measured part of the results file, keeping the hand-written analysis around it;
    `commit` is the code measured (`measured_commit`, read when the run began)."""
    import os

    header = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit}, Python "
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
    commit = measured_commit()  # the code that is timed, before anything can change under the run
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
    write_results(sections, sizes, output, time.monotonic() - started, commit)
    log(f"results written to {output}")


if __name__ == "__main__":
    main()
