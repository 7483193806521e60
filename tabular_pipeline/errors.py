"""The error type for problems a user can fix, and the one way messages are cut to one line."""

from __future__ import annotations


class PipelineError(Exception):
    """A user-facing error. Its message is one line naming what is wrong and what was expected."""


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """The first non-empty line of an error's message (MLflow's `message` when it has one), cut to
    `limit` characters (ending in "…" when cut); the error's type name when the message is empty."""
    text = error if isinstance(error, str) else (getattr(error, "message", None) or str(error))
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if lines:
        return lines[0] if len(lines[0]) <= limit else lines[0][: limit - 1] + "…"
    return "" if isinstance(error, str) else type(error).__name__
