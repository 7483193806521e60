"""Hyperparameters after parsing: fixed values apart from search lists, and names and types checked
against an estimator's own parameters (the allowlist)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.parameters.strings import ParamValue, Scalar


def split_search_space(params: Mapping[str, ParamValue]) -> tuple[dict[str, Scalar], dict[str, list]]:
    """Separate fixed values from lists, which mean "search these values".

    Args:
        params: parsed hyperparameters.

    Returns:
        (fixed values, search grid). A one-element list counts as a fixed value.
    """
    fixed: dict[str, Scalar] = {}
    grid: dict[str, list] = {}
    for name, value in params.items():
        if isinstance(value, list):
            if len(value) == 0:
                raise PipelineError(f"search_params: '{name}' is an empty list; expected at least one value")
            if len(value) == 1:
                fixed[name] = value[0]
            else:
                grid[name] = list(value)
        else:
            fixed[name] = value
    return fixed, grid


def _type_name(value: object) -> str:
    return "None" if value is None else type(value).__name__


def _value_fits(default: object, value: object) -> bool:
    """Whether `value` has a type the estimator's default suggests it accepts."""
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return (
            isinstance(value, int) and not isinstance(value, bool) or (isinstance(value, float) and value.is_integer())
        )
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        # Many string options also take a number or None (e.g. max_features="sqrt" or 0.5).
        return True
    return True


def validate_hyperparameters(
    params: Mapping[str, ParamValue], defaults: Mapping[str, object], algorithm: str, unechoed: Collection[str] = ()
) -> None:
    """Check names against the estimator's own parameters (the allowlist) and types against defaults.

    Args:
        params: parsed hyperparameters, lists allowed (search values).
        defaults: the estimator's `get_params()`; its keys are the allowlist.
        algorithm: the algorithm name, for error messages.
        unechoed: names whose values must not appear in messages (they came from a file).
    """
    import difflib

    for name, value in params.items():
        if name not in defaults:
            close = difflib.get_close_matches(name, list(defaults), n=3)
            hint = (
                f"; did you mean {', '.join(close)}?" if close else f"; expected one of: {', '.join(sorted(defaults))}"
            )
            raise PipelineError(f"unknown hyperparameter '{name}' for algorithm '{algorithm}'{hint}")
        default = defaults[name]
        for item in value if isinstance(value, list) else [value]:
            if not _value_fits(default, item):
                shown = _type_name(item) if name in unechoed else f"{_type_name(item)} {item!r}"
                raise PipelineError(
                    f"hyperparameter '{name}' for algorithm '{algorithm}' must be "
                    f"{_type_name(default)} (like the default {default!r}), got {shown}"
                )


def check_single_values(
    params: Mapping[str, ParamValue], list_settings: Collection[str], tool: str, defaults: Mapping[str, object]
) -> None:
    """An AutoML tool's settings are one value each, apart from `list_settings` (learner or model
    lists): a list elsewhere would read as a search, which the tool does not take from `params`;
    and None only where None is the default."""
    for name, value in params.items():
        if isinstance(value, list) and name not in list_settings:
            raise PipelineError(f"setting '{name}' for {tool} is a list; expected one value")
        if value is None and defaults.get(name) is not None:
            raise PipelineError(
                f"setting '{name}' for {tool} is None; expected a value like the default {defaults[name]!r}, or no "
                "setting for the default"
            )
