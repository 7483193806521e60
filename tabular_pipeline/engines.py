"""The engines a table can be processed, trained and scored on. Standard library only: `main`
checks the name before any step starts, without loading pyarrow or numpy."""

from __future__ import annotations

from tabular_pipeline.errors import PipelineError

ENGINES = ("pandas", "spark")


def check_engine(engine: str) -> str:
    """Normalise the engine name, or refuse it with the list of engines."""
    key = (engine or "").strip().lower()
    if key not in ENGINES:
        raise PipelineError(f"engine '{engine}' is not supported; expected one of {', '.join(ENGINES)}")
    return key
