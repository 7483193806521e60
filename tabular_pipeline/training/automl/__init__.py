"""Which AutoML tools the project knows, and which of them it can run."""

from __future__ import annotations

from tabular_pipeline.errors import PipelineError

AUTOML_TOOLS = ("flaml", "autogluon", "autosklearn")


def check_tool(tool: str) -> str:
    """The tool's canonical name (any case, `auto-sklearn` and `auto_sklearn` too)."""
    name = (tool or "").strip().lower().replace("-", "").replace("_", "")
    if name not in AUTOML_TOOLS:
        raise PipelineError(f"tool '{tool}' is not supported; expected flaml, autogluon or autosklearn")
    return name
