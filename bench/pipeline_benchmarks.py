"""Benchmarks 1 to 3: the pipeline's overhead against a plain script, cached reruns, and AutoML
quality against FLAML called directly."""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.session import Bench, Sizes, log
from bench.stats import markdown_table, median, ratio


def pipeline_overhead(
    bench: Bench, sizes: Sizes, datasets: dict[str, Path], quick: bool = False
) -> tuple[str, dict[str, str]]:
    """Benchmark 1 and 2: `main` (cache off, then cached) against one plain script.

    With `quick`, the cache-filling run (a fresh experiment, so every step runs) stands in for the
    cache-off runs: the smoke test then runs `main` twice instead of three times.
    """
    from tests.conftest import project_command

    rows, models = [], {}
    cached_rows = []
    floor = startup_floor(bench, 1 if quick else STARTUP_SAMPLES)
    noop = project_command("main", None, noop_experiment(bench), uri=str(noop_project(bench.scratch)))
    for label, path in datasets.items():
        pipeline, plain, minimal, cached, above_noop = [], [], [], [], []
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
            seconds, _ = bench.python(
                "bench.minimal_script", "--data_path", str(path), "--experiment_name", f"{experiment}-minimal"
            )
            minimal.append(seconds)
            log(
                f"overhead {label} #{repeat + 1}: pipeline {pipeline[-1] if pipeline else float('nan'):.1f} s, "
                f"same-work script {plain[-1]:.1f} s, minimal script {minimal[-1]:.1f} s"
            )
        # A cache-on run first (cache-off runs record their keys too, so it may reuse the last one's
        # steps); the reruns then reuse every step.
        seconds, _ = bench.mlflow_run("main", {"data_path": path, "model_name": model_name}, experiment)
        if quick:
            pipeline.append(seconds)
        # Each rerun is paired with a no-op project run next to it (after it, then before the next),
        # so that a machine drifting during the session weighs on both: the difference is what
        # main adds to MLflow's floor, and neither side is always the one a warmer machine helps.
        for repeat in range(1 if quick else max(sizes.repeats, CACHED_SAMPLES)):
            if repeat % 2:
                noop_seconds, _ = bench.timed(noop)
            seconds, _ = bench.mlflow_run("main", {"data_path": path, "model_name": model_name}, experiment)
            if not repeat % 2:
                noop_seconds, _ = bench.timed(noop)
            cached.append(seconds)
            above_noop.append(seconds - noop_seconds)
            log(f"cached {label} #{repeat + 1}: {seconds:.3f} s, paired with the no-op project {noop_seconds:.3f} s")
        main_run = bench.latest_run(experiment, "main")
        models[label] = f"models:/{model_name}@production"
        full = median(pipeline)
        rows.append(
            [label, full, median(plain), ratio(full, median(plain)), median(minimal), ratio(full, median(minimal))]
        )
        reused = main_run.data.tags.get("pipeline.steps_reused", "")
        cached_rows.append(
            [
                label,
                full,
                median(cached),
                ratio(median(cached), full),
                ratio(floor.seconds, full),
                ratio(floor.noop_project, full),
                median(above_noop),
                reused,
            ]
        )
    table = markdown_table(
        [
            "table",
            "main, cache off (s)",
            "same-work script (s)",
            "ratio (target ≤ 1.5)",
            "minimal script (s)",
            "ratio (target ≤ 2.5 on 300k)",
        ],
        rows,
    )
    cached_table = markdown_table(
        [
            "table",
            "full run (s)",
            "cached rerun (s)",
            "ratio (target ≤ 0.10)",
            "floor / full run",
            "no-op project / full run",
            "cached rerun − no-op project, paired (s)",
            "steps reused",
        ],
        cached_rows,
    )
    text = f"### 1. Pipeline overhead\n\n{table}\n\n### 2. Cached rerun\n\n{cached_table}\n\n{floor.markdown()}\n"
    return text, models


@dataclass(frozen=True)
class StartupFloor:
    """What any cached rerun pays before `main` does any work: the `mlflow run` CLI's start-up and
    one Python that imports MLflow; and what `mlflow run` of a project that does nothing but open
    and close its run takes (the CLI's own REST calls and its run included). Medians, wall seconds."""

    python: float
    import_mlflow: float
    import_mlflow_frozen: float
    mlflow_cli: float
    noop_project: float
    samples: int

    @property
    def seconds(self) -> float:
        return self.mlflow_cli + self.import_mlflow

    def markdown(self) -> str:
        table = markdown_table(
            ["process", "wall time (s)"],
            [
                ["`python -c pass`", self.python],
                ["`python -c 'import mlflow'`", self.import_mlflow],
                [f"`python -c '{FROZEN_EXIT_COMMAND}'` (exits as the entry points do)", self.import_mlflow_frozen],
                ["`mlflow run --help` (the CLI's start-up)", self.mlflow_cli],
                ["floor: the CLI and one process importing MLflow", self.seconds],
                [f"`mlflow run` of a no-op project (`{NOOP_COMMAND}`)", self.noop_project],
            ],
        )
        return f"Start-up that MLflow sets, median of {self.samples} fresh process(es) each:\n\n{table}\n"


STARTUP_SAMPLES = 5
# Cached reruns (each paired with a no-op project run) per table: a few seconds each.
CACHED_SAMPLES = 7
NOOP_COMMAND = "import mlflow; mlflow.start_run(); mlflow.end_run()"
# What `tabular_pipeline.process_exit` makes of an exit: the heap frozen, so no final collection.
FROZEN_EXIT_COMMAND = "import mlflow, gc; gc.freeze()"


def noop_experiment(bench: Bench) -> str:
    """The experiment of every no-op project run in a session: created once, by the first."""
    return f"bench-noop-{bench.scratch.name}"


def noop_project(scratch: Path) -> Path:
    """An MLflow project (in `scratch`) whose one entry point imports MLflow, opens the run and
    closes it: what every `mlflow run` of an entry point that uses MLflow costs, whatever it does."""
    folder = scratch / "noop-project"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "MLproject").write_text(
        f"name: noop\nentry_points:\n  main:\n    command: \"python3 -c '{NOOP_COMMAND}'\"\n"
    )
    return folder


def startup_floor(bench: Bench, samples: int) -> StartupFloor:
    """Time fresh processes: bare Python, `import mlflow`, the `mlflow run` CLI (`--help` parses
    no project, so it is the CLI's imports alone), and `mlflow run` of a no-op project."""
    from tests.conftest import project_command

    python = [bench.timed([sys.executable, "-c", "pass"])[0] for _ in range(samples)]
    imports = [bench.timed([sys.executable, "-c", "import mlflow"])[0] for _ in range(samples)]
    frozen = [bench.timed([sys.executable, "-c", FROZEN_EXIT_COMMAND])[0] for _ in range(samples)]
    cli = [bench.timed([str(bench.bin / "mlflow"), "run", "--help"])[0] for _ in range(samples)]
    project = str(noop_project(bench.scratch))
    noop = [bench.timed(project_command("main", None, noop_experiment(bench), uri=project))[0] for _ in range(samples)]
    floor = StartupFloor(median(python), median(imports), median(frozen), median(cli), median(noop), samples)
    log(
        f"start-up floor: python {floor.python:.2f} s, import mlflow {floor.import_mlflow:.2f} s "
        f"({floor.import_mlflow_frozen:.2f} s ending frozen), "
        f"CLI {floor.mlflow_cli:.2f} s, no-op project {floor.noop_project:.2f} s"
    )
    return floor


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
