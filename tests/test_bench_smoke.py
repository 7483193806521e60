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


def test_benchmarks_run_with_tiny_sizes(tmp_path, tracking_uri):
    results = tmp_path / "RESULTS.md"
    results.write_text(
        "# Benchmark results\n\nhand-written notes\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\ntrailing "
        "notes\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run_benchmarks",
            "--quick",
            "--only",
            "overhead",
            "--output",
            str(results),
            "--tracking_uri",
            tracking_uri,
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        env=subprocess_env(""),
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    text = results.read_text()
    for section in SECTIONS:
        assert f"### {section}" in text, section
    assert text.startswith("# Benchmark results\n\nhand-written notes") and text.rstrip().endswith("trailing notes"), (
        "notes kept"
    )
    assert "\nold\n" not in text, "the measured part is replaced"
    pipeline_ratio = re.search(r"\| generated \| [\d.,]+ \| [\d.,]+ \| ([\d.]+) \|", text)
    assert pipeline_ratio and float(pipeline_ratio.group(1)) > 0
    assert re.search(r"\| generated \| [\d.,]+ \| [\d.,]+ \| [\d.]+ \| 4 \|", text), (
        "the cached rerun reused all four steps"
    )
