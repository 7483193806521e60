"""Entry point `train_automl`: declared now so command lines validate; AutoML lands in a later issue."""

from __future__ import annotations

import click

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.step_runs import run_step

AUTOML_TOOLS = ("flaml", "autosklearn")


def train_with_automl(tool: str, run) -> None:  # noqa: ARG001 - same signature as the other steps
    """Refuse clearly until AutoML support exists."""
    name = (tool or "").strip().lower()
    if name not in AUTOML_TOOLS:
        raise PipelineError(f"tool '{tool}' is not supported; expected flaml or autosklearn")
    raise PipelineError(
        f"AutoML with {name} is not available in this version; use -P algorithm=lr|svm|lightgbm|xgboost without -P tool"
    )


@click.command()
@click.option("--tool", default="flaml", show_default=True, help="flaml or autosklearn (any case).")
@click.option("--data_path", required=True)
@click.option("--params", default="")
@click.option("--label_column", default="label", show_default=True)
@click.option("--model_name", default="")
@click.option("--time_budget", type=float, default=60.0, show_default=True, help="Seconds of search.")
def train_automl(tool: str, data_path: str, params: str, label_column: str, model_name: str, time_budget: float) -> None:
    """Train with an AutoML tool (not yet available)."""
    run_step("train_automl", lambda run: train_with_automl(tool, run))


if __name__ == "__main__":
    train_automl()
