"""Benchmarks 1 to 3: the pipeline's overhead against a plain script, cached reruns, and AutoML
quality against FLAML called directly."""

from __future__ import annotations

import json
import uuid
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
