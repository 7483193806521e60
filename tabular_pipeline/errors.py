"""The error type for problems a user can fix: bad input, bad parameters, unreachable data."""


class PipelineError(Exception):
    """A user-facing error. Its message is one line naming what is wrong and what was expected."""
