"""The benchmark script still runs (tiny sizes, one repetition, the pipeline benchmarks only, to
keep the suite short; `make bench BENCH_ARGS=--quick` runs all five). It times nothing: it checks
that the sections are written, the ratios are numbers and the hand-written notes are kept."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import PROJECT_DIR, subprocess_env

pytestmark = pytest.mark.e2e

SECTIONS = ("1. Pipeline overhead", "2. Cached rerun", "4. Serving")


def run_bench(module: str, *args: str, timeout_s: float, temp_dir: Path | None = None) -> subprocess.CompletedProcess:
    """Run a bench module as a user would (this venv first on PATH, no MLflow settings inherited,
    temporary files in `temp_dir` when given); it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        env={**subprocess_env(""), **({"TMPDIR": str(temp_dir)} if temp_dir else {})},
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
    done = run_bench(
        "bench.run_benchmarks", "--quick", "--only", "overhead,serving", "--output", str(results),
        "--tracking_uri", tracking_uri, timeout_s=900,
    )  # fmt: skip
    for noise in ("View run", "Downloading artifacts", "Warning"):
        assert noise not in done.stdout + done.stderr, f"the bench's log says '{noise}'"
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
    cached = re.search(
        r"\| generated \| ([\d.,]+) \| [\d.,]+ \| [\d.]+ \| [\d.]+ \| ([\d.]+) \| (-?[\d.]+) \| 4 \|", text
    )
    assert cached, "the cached rerun reused all four steps"
    # The paired difference, recomputed from the bench's log of each rerun and the no-op run after it.
    pairs = re.findall(r"cached generated #\d+: ([\d.]+) s, paired with the no-op project ([\d.]+) s", done.stderr)
    assert len(pairs) == 1, done.stderr[-3000:]
    assert float(cached.group(3)) == pytest.approx(float(pairs[0][0]) - float(pairs[0][1]), abs=0.002)
    served = dict(
        re.findall(
            r"^\| (`mlflow models serve` /invocations|in-process `model.predict`|ratio) \| ([\d.]+) \|", text, re.M
        )
    )
    assert len(served) == 3, text
    assert float(served["ratio"]) == pytest.approx(
        float(served["`mlflow models serve` /invocations"]) / float(served["in-process `model.predict`"]), rel=0.02
    ), "p50 over HTTP against in process (printed to 3 decimals below 10, to 1 from 10 up)"
    pure_python = dict(
        re.findall(
            r"^\| (the same, uvicorn's pure-Python loop[^|]*|ratio, pure-Python uvicorn) \| ([\d.]+) \|", text, re.M
        )
    )
    assert len(pure_python) == 2, text
    assert float(pure_python["ratio, pure-Python uvicorn"]) == pytest.approx(
        float(next(v for k, v in pure_python.items() if k.startswith("the same")))
        / float(served["in-process `model.predict`"]),
        rel=0.02,
    ), "the server without uvloop and httptools, against the same in-process p50"
    floor = {name: float(value) for name, value in re.findall(r"^\| (`[^|]+|floor[^|]*) \| ([\d.]+) \|$", text, re.M)}
    assert len(floor) == 6, text
    # Printed to 3 decimals below 10 s and to 1 above: the sum of the printed parts is within 0.06.
    assert floor["floor: the CLI and one process importing MLflow"] == pytest.approx(
        floor["`python -c 'import mlflow'`"] + floor["`mlflow run --help` (the CLI's start-up)"], abs=0.06
    )
    noop = floor["`mlflow run` of a no-op project (`import mlflow; mlflow.start_run(); mlflow.end_run()`)"]
    assert noop > floor["`mlflow run --help` (the CLI's start-up)"], "the no-op run starts the CLI and more"
    full, noop_ratio = (float(value.replace(",", "")) for value in cached.groups()[:2])
    assert noop_ratio == pytest.approx(noop / full, abs=0.002), "the no-op project's share of the full run"
    check_same_work(tracking_uri)


def artifact_paths(client, run_id: str, folder: str | None = None) -> set[str]:
    """Every artifact file of a run, by its path in the run."""
    found = set()
    for item in client.list_artifacts(run_id, folder):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def check_same_work(tracking_uri: str) -> None:
    """The same-work script does `process`'s, `train_basic`'s and `register`'s work, as the ratio
    claims: the bench's `process` and `train_basic` runs' artifacts, test metrics, booster threads,
    hyperparameters and datasets, and its version was judged by the gate."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    plain_experiments = client.search_experiments(filter_string="name LIKE 'bench-%-plain'")
    assert len(plain_experiments) == 1, [e.name for e in plain_experiments]
    main_experiment = client.get_experiment_by_name(plain_experiments[0].name.removesuffix("-plain"))
    [plain_run] = client.search_runs([plain_experiments[0].experiment_id])

    def latest(entry_point: str):
        query = f"tags.`pipeline.entry_point` = '{entry_point}'"
        runs = client.search_runs([main_experiment.experiment_id], query, order_by=["start_time DESC"], max_results=1)
        return runs[0]

    train_run, process_run = latest("train_basic"), latest("process")
    params = {name: value for name, value in train_run.data.params.items() if name.startswith("hp.")}
    params["booster_threads"] = train_run.data.params["booster_threads"]
    assert params.items() <= plain_run.data.params.items(), (params, plain_run.data.params)
    tested = {name for name in train_run.data.metrics if name.startswith("test_")}
    assert tested and tested <= set(plain_run.data.metrics), (tested, plain_run.data.metrics)
    trained, processed = artifact_paths(client, train_run.info.run_id), artifact_paths(client, process_run.info.run_id)
    assert "evaluation/test.parquet" in trained and "card.html" in trained, trained
    assert "processed/profile.json" in processed, processed
    assert artifact_paths(client, plain_run.info.run_id) == trained | processed

    def datasets(run) -> dict[str, str]:
        return {
            tag.value: found.dataset.digest
            for found in run.inputs.dataset_inputs
            for tag in found.tags
            if tag.key == "mlflow.data.context"
        }

    assert datasets(train_run).keys() == {"training", "testing"}
    assert datasets(plain_run) == datasets(train_run), "the same rows, split the same way"
    [version] = client.search_model_versions("name = 'bench-generated-plain'")
    assert version.tags.get("gate.decision") == "promoted", version.tags


@pytest.mark.timeout(300)
def test_automl_tools_benchmark_runs_with_a_tiny_budget(tmp_path):
    """FLAML against AutoGluon (bench/automl_tools.py) on one tiny table: one JSON line per tool
    with a score, a wall time and latencies over HTTP and in process."""
    import json

    output = tmp_path / "automl_tools.jsonl"
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    checkout_runs = PROJECT_DIR / "mlruns"  # where a SQLite store's artifacts go by default
    before = sorted(checkout_runs.rglob("*"))
    done = run_bench(
        "bench.automl_tools", "--budgets", "8", "--rows", "400", "--columns", "8", "--tasks", "regression",
        "--requests", "20", "--output", str(output), timeout_s=240, temp_dir=temp_dir,
    )  # fmt: skip
    assert sorted(checkout_runs.rglob("*")) == before, "the benchmark wrote into the checkout's mlruns"
    # Nothing left in the temporary folder (the servers' logs were once), but MLflow's own empty
    # lock file for a SQLite store's first use, which MLflow never removes.
    left = sorted(path.name for path in temp_dir.iterdir() if not path.name.startswith("db_init_lock-"))
    assert left == [], left
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(r["tool"], r["task"], r["metric"]) for r in records] == [
        ("flaml", "regression", "test_rmse"),
        ("autogluon:default", "regression", "test_rmse"),
    ]
    assert all(r["score"] > 0 and r["train_wall_s"] > 0 for r in records)
    assert records[1]["bag_folds_used"] == 5 and "bag_folds_used" not in records[0], "8 s bags 300 training rows"
    assert all(0 < r[f"{where}_p50_ms"] <= r[f"{where}_p95_ms"] for r in records for where in ("http", "in_process"))
    assert "Failed to import torch" not in done.stderr, "AutoGluon's GPU notice is held back"
    report = run_bench("bench.automl_tools", "--report", "--output", str(output), timeout_s=120).stdout
    assert re.search(r"^\| regression \| 8 \| test_rmse \| [\d.]+ \| [\d.]+ \| default \| (yes|no) \|", report, re.M), (
        report
    )


def test_a_benchmark_experiment_keeps_its_artifacts_in_its_scratch_folder(tmp_path, monkeypatch):
    """A SQLite store's experiments keep their artifacts in `./mlruns` of the working directory,
    the checkout's when a benchmark runs from it; the benchmarks' own experiments keep them in
    their scratch folder."""
    from mlflow import MlflowClient

    from bench.session import scratch_experiment

    work, scratch = tmp_path / "checkout", tmp_path / "scratch"
    work.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(work)
    uri = f"sqlite:///{scratch / 'mlflow.db'}"
    experiment_id = scratch_experiment(uri, "bench", scratch)
    assert scratch_experiment(uri, "bench", scratch) == experiment_id, "found again, not created twice"
    client = MlflowClient(uri)
    run = client.create_run(experiment_id)
    note = tmp_path / "note.txt"
    note.write_text("logged")
    client.log_artifact(run.info.run_id, str(note))
    client.set_terminated(run.info.run_id)
    assert list(work.iterdir()) == []
    assert [path.read_text() for path in (scratch / "artifacts").rglob("note.txt")] == ["logged"]
    client.create_experiment("elsewhere", artifact_location=(tmp_path / "other").as_uri())
    with pytest.raises(click.ClickException, match="experiment 'elsewhere' keeps its artifacts at"):
        scratch_experiment(uri, "elsewhere", scratch)


def test_the_same_work_script_keeps_a_sqlite_stores_artifacts_beside_its_database(tmp_path):
    """Run by hand against a SQLite store outside the checkout (found in a new user's trial), the
    same-work script once wrote its run's and model's artifacts into the checkout's `./mlruns`."""
    from mlflow import MlflowClient

    store, work = tmp_path / "store", tmp_path / "work"
    store.mkdir()
    work.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "bench.plain_pipeline", "--data_path", str(PROJECT_DIR / "data" / "breast_cancer.csv"),
         "--model_name", "by-hand", "--experiment_name", "by-hand"],
        capture_output=True, text=True, cwd=work, timeout=300,
        env={**subprocess_env(uri), "PYTHONPATH": str(PROJECT_DIR)},
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert list(work.iterdir()) == [], "nothing written where it ran"
    experiment = MlflowClient(uri).get_experiment_by_name("by-hand")
    assert experiment.artifact_location == (store / "mlartifacts").as_uri()
    assert list((store / "mlartifacts").rglob("MLmodel")), "the model's files are beside the database"


@pytest.mark.parametrize(
    ("module", "arguments", "expected"),
    [
        ("bench.plain_pipeline", ["--data_path", "no_such_table.csv", "--model_name", "m"], "no_such_table.csv"),
        ("bench.plain_pipeline", ["--data_path", "data/breast_cancer.csv", "--model_name", "m", "--algorithm", "rf"],
         "algorithm 'rf' is not supported"),
        ("bench.spark_dataset_profile", ["--rows", "0"], "Invalid value for '--rows'"),
        ("bench.spark_dataset_profile", ["--master", "nowhere"], "spark_master 'nowhere' is not a Spark master URL"),
    ],
)  # fmt: skip
def test_the_benchmark_scripts_refuse_bad_input_in_one_line(tmp_path, module, arguments, expected):
    """Before any run or Spark session: one line naming what is wrong, a non-zero exit, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", module, *arguments], capture_output=True, text=True, cwd=PROJECT_DIR, timeout=120,
        env={**subprocess_env(f"sqlite:///{tmp_path / 'mlflow.db'}"), "PYTHONPATH": str(PROJECT_DIR)},
    )  # fmt: skip
    assert done.returncode != 0 and expected in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert "Traceback" not in done.stderr and len(errors) == 1 and expected in errors[0], done.stderr
    assert not (tmp_path / "mlflow.db").exists(), "refused before any run was created"


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


def test_the_spark_scaling_report_keeps_sessions_apart_and_takes_medians_of_repeats():
    """As `make bench-spark` lays the records out: a local[*] session of both engines with repeats,
    then a standalone session at 1M, and 10M rows alone in a third invocation."""
    from bench.spark_scaling import report

    def run(engine, rows, seconds, session, master, **extra):
        return {"engine": engine, "rows": rows, "seconds": seconds, "driver_peak_mb": 1000, "exit_code": 0,
                "session": session, "master": master, "commit": "abc", "date": "2026-12-05", **extra}  # fmt: skip

    local = [run("pandas", 1_000_000, 50.0, "2026-12-05T01:00:00 abc", "local[*]")] + [
        run("spark", 1_000_000, seconds, "2026-12-05T01:00:00 abc", "local[*]", step_seconds=steps)
        for seconds, steps in ((80.0, {"process": 20.0}), (100.0, {"process": 22.0, "train_basic": 70.0}), (130.0, {}))
    ]
    standalone = [
        run("pandas", 1_000_000, 40.0, "2026-12-05T02:00:00 abc", "standalone"),
        run("spark", 1_000_000, 100.0, "2026-12-05T02:00:00 abc", "standalone"),
    ]
    alone = [run("spark", 10_000_000, 600.0, "2026-12-05T03:00:00 abc", "standalone")]
    rows = report(local + standalone + alone).splitlines()[2:]
    assert len(rows) == 5, rows
    # Repeats are one row: the median time (of 80, 100 and 130 s), each step's median over the runs that timed it.
    assert rows[1].startswith("| spark | local[*] | 1,000,000 | 3 | 100 | 2.00× | 1.00 | 10,000 |"), rows
    assert rows[1].endswith("| 21 | 70 | abc |"), rows
    assert rows[0].startswith("| pandas | local[*] | 1,000,000 | 1 | 50 | 1.00× |"), rows
    assert rows[3].startswith("| spark | standalone | 1,000,000 | 1 | 100 | 2.50× | 1.00 |"), "its own session's pandas"
    # 10M rows, run alone, still grow against the same master's 1M rows of that commit and day.
    assert rows[4].startswith("| spark | standalone | 10,000,000 | 1 | 600 | - | 0.60 |"), rows


def test_the_spark_scaling_plot_draws_the_oldest_day_and_the_newest_commit(tmp_path):
    """The plot RESULTS.md shows: the oldest day dashed, the last record's commit solid, nothing in
    between; with no finished run, empty axes rather than an error."""
    from bench.spark_scaling import plot

    def run(engine, rows, seconds, commit, day, master="standalone"):
        session = f"{day}T01:00:00 {commit} {master}"
        return {"engine": engine, "rows": rows, "seconds": seconds, "driver_peak_mb": 1000, "exit_code": 0,
                "session": session, "master": master, "commit": commit, "date": day}  # fmt: skip

    records = [run("spark", 1_000_000, 200.0, "old", "2026-12-02"), run("spark", 3_000_000, 400.0, "old", "2026-12-02")]
    records.append(run("spark", 1_000_000, 150.0, "middle", "2026-12-03"))
    records += [
        run("spark", 1_000_000, 90.0, "new", "2026-12-05", "local[*]"),
        run("pandas", 1_000_000, 50.0, "new", "2026-12-05"),
    ]
    assert plot(records, tmp_path / "some.png") == [
        ("spark standalone old 2026-12-02", "--"),
        ("spark local[*] new 2026-12-05", "-"),
        ("pandas standalone new 2026-12-05", "-"),
    ]
    assert (tmp_path / "some.png").stat().st_size > 0
    assert plot([{**records[0], "exit_code": 1}], tmp_path / "none.png") == []


def test_the_spark_scaling_benchmark_refuses_a_master_it_cannot_start():
    from click.testing import CliRunner

    from bench.spark_scaling import main

    for master in ("localhost", "spark://10.0.0.1:7077", "local[x]"):
        result = CliRunner().invoke(main, ["--master", master, "--rows", "10"])
        assert result.exit_code == 2 and "expected 'standalone' or local[...]" in result.output, result.output


@pytest.mark.timeout(300)
def test_the_dataset_profile_benchmark_logs_both_ways_on_the_same_frame():
    """bench/spark_dataset_profile.py on a tiny frame: a line without logging, then the project's
    dataset and MLflow's, each with the count after it; the project's profile is the frame's rows."""
    import json

    done = run_bench("bench.spark_dataset_profile", "--rows", "3000", "--columns", "2", timeout_s=240)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [record["way"] for record in records] == ["none", "counted", "mlflow"]
    assert all(record["rows"] == 3000 and record["count_s"] > 0 for record in records)
    counted, logged_by_mlflow = records[1], records[2]
    assert counted["profile"] == {"num_rows": 3000}, "the row count it was given, as the run records it"
    assert "approx_count" in logged_by_mlflow["profile"], "MLflow's own profile, computed on the cluster"
    assert "Hint: Inferred schema" not in done.stderr
    assert all(record["log_s"] > 0 and record["count_after_s"] > 0 for record in records[1:])
