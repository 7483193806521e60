"""The benchmark script still runs (tiny sizes, one repetition, the pipeline benchmarks only, to
keep the suite short; `make bench BENCH_ARGS=--quick` runs all five). It times nothing: it checks
that the sections are written, the ratios are numbers and the hand-written notes are kept."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import PROJECT_DIR, subprocess_env

pytestmark = pytest.mark.e2e

SECTIONS = ("1. Pipeline overhead", "2. Cached rerun")


def run_bench(module: str, *args: str, timeout_s: float) -> subprocess.CompletedProcess:
    """Run a bench module as a user would (this venv first on PATH, no MLflow settings inherited);
    it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        env=subprocess_env(""),
        timeout=timeout_s,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def test_benchmarks_run_with_tiny_sizes(tmp_path, tracking_uri):
    results = tmp_path / "RESULTS.md"
    results.write_text(
        "# Benchmark results\n\nhand-written notes\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\ntrailing "
        "notes\n"
    )
    run_bench(
        "bench.run_benchmarks", "--quick", "--only", "overhead", "--output", str(results),
        "--tracking_uri", tracking_uri, timeout_s=900,
    )  # fmt: skip
    text = results.read_text()
    for section in SECTIONS:
        assert f"### {section}" in text, section
    assert text.startswith("# Benchmark results\n\nhand-written notes") and text.rstrip().endswith("trailing notes"), (
        "notes kept"
    )
    assert "\nold\n" not in text, "the measured part is replaced"
    overhead = re.search(r"\| generated \| ([\d.,]+) \| [\d.,]+ \| ([\d.]+) \| ([\d.,]+) \| ([\d.]+) \|", text)
    assert overhead, "main against the same-work and the minimal script"
    full, same_work_ratio, minimal, minimal_ratio = (float(value.replace(",", "")) for value in overhead.groups())
    assert same_work_ratio > 0 and abs(minimal_ratio - full / minimal) < 0.01 * minimal_ratio, "ratio of the medians"
    assert re.search(r"\| generated \| [\d.,]+ \| [\d.,]+ \| [\d.]+ \| [\d.]+ \| 4 \|", text), (
        "the cached rerun reused all four steps"
    )
    floor = {name: float(value) for name, value in re.findall(r"^\| (`[^|]+|floor[^|]*) \| ([\d.]+) \|$", text, re.M)}
    assert len(floor) == 4, text
    # Printed to 3 decimals below 10 s and to 1 above: the sum of the printed parts is within 0.06.
    assert floor["floor: the CLI and one process importing MLflow"] == pytest.approx(
        floor["`python -c 'import mlflow'`"] + floor["`mlflow run --help` (the CLI's start-up)"], abs=0.06
    )


@pytest.mark.timeout(300)
def test_automl_tools_benchmark_runs_with_a_tiny_budget(tmp_path):
    """FLAML against AutoGluon (bench/automl_tools.py) on one tiny table: one JSON line per tool
    with a score, a wall time and latencies over HTTP and in process."""
    import json

    output = tmp_path / "automl_tools.jsonl"
    done = run_bench(
        "bench.automl_tools", "--budgets", "8", "--rows", "400", "--columns", "8", "--tasks", "regression",
        "--requests", "20", "--output", str(output), timeout_s=240,
    )  # fmt: skip
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(r["tool"], r["task"], r["metric"]) for r in records] == [
        ("flaml", "regression", "test_rmse"),
        ("autogluon:medium_quality", "regression", "test_rmse"),
    ]
    assert all(r["score"] > 0 and r["train_wall_s"] > 0 for r in records)
    assert all(0 < r[f"{where}_p50_ms"] <= r[f"{where}_p95_ms"] for r in records for where in ("http", "in_process"))
    assert "Failed to import torch" not in done.stderr, "AutoGluon's GPU notice is held back"
    report = run_bench("bench.automl_tools", "--report", "--output", str(output), timeout_s=120).stdout
    assert re.search(
        r"^\| regression \| 8 \| test_rmse \| [\d.]+ \| [\d.]+ \| medium_quality \| (yes|no) \|", report, re.M
    ), report


def test_the_spark_scaling_report_compares_engines_on_the_same_rows_and_growth_per_row():
    """The Spark benchmark itself needs a cluster and minutes per run; its report is checked here."""
    from bench.spark_scaling import report

    records = [
        {"engine": "pandas", "rows": 1_000_000, "seconds": 100.0, "driver_peak_mb": 3000, "exit_code": 0},
        {"engine": "spark", "rows": 1_000_000, "seconds": 200.0, "driver_peak_mb": 1500, "exit_code": 0},
        {"engine": "spark", "rows": 10_000_000, "seconds": 1000.0, "driver_peak_mb": 1600, "exit_code": 0},
        {"engine": "spark", "rows": 3_000_000, "seconds": 9.0, "driver_peak_mb": 1, "exit_code": 1},
    ]
    rows = report(records).splitlines()[2:]
    assert len(rows) == 3, "a failed run is not reported"
    assert rows[1].startswith("| spark | standalone | 1,000,000 | 1 | 200 | 2.00× | 1.00 |")
    assert rows[2].startswith("| spark | standalone | 10,000,000 | 1 | 1000 | - | 0.50 |"), "sub-linear"
    # Each invocation is its own session: a local master's run is compared with its own pandas run.
    local = [
        {**r, "master": "local[*]", "session": "s2", "seconds": r["seconds"] / 2, "date": "2026-12-05"}
        for r in records[:2]
    ]
    # Repeats of a session are one row: the median times (here 80, 100, 130 s), the highest peak.
    local += [{**local[1], "seconds": 80.0, "driver_peak_mb": 1700}, {**local[1], "seconds": 130.0}]
    rows = report(records + local).splitlines()[2:]
    assert rows[-1].startswith("| spark | local[*] | 1,000,000 | 3 | 100 | 2.00× | 1.00 | 10,000 | 1,700 |"), rows
    assert rows[-2].startswith("| pandas | - | 1,000,000 | 1 | 50 | 1.00× |"), rows
