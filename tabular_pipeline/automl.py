"""Which AutoML tools the project knows, and which of them it can run."""

from __future__ import annotations

from tabular_pipeline.errors import PipelineError

AUTOML_TOOLS = ("flaml", "autosklearn")


def check_tool(tool: str) -> str:
    """The tool's canonical name (any case, `auto-sklearn` too); auto-sklearn is not available yet."""
    name = (tool or "").strip().lower().replace("-", "")
    if name not in AUTOML_TOOLS:
        raise PipelineError(f"tool '{tool}' is not supported; expected flaml or autosklearn")
    if name == "autosklearn":
        raise PipelineError("AutoML with autosklearn is not available in this version; use -P tool=flaml")
    return name
