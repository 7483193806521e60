"""Each entry point's parameters, declared once: in MLproject, the contract users see.

The click options of `main.py` and `steps/*.py` are built from it here (names, types, defaults,
required or not), so a parameter is added or changed in MLproject alone. Only the help texts live
with the commands. A parity test checks the README's entry-point table against MLproject.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

import click

from tabular_pipeline.parameters.cli import WHOLE_NUMBER
from tabular_pipeline.paths import MLPROJECT_FILE

# MLproject has no int or bool type: counts are declared float and switches string.
WHOLE_NUMBER_PARAMETERS = frozenset({"seed", "cv", "n_jobs", "batch_rows"})
SWITCH_PARAMETERS = frozenset({"use_cache", "force", "fail_on_drift"})


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: its MLproject type, and its default (None when required)."""

    name: str
    type: str
    default: object = None

    @property
    def required(self) -> bool:
        return self.default is None


@cache
def mlproject() -> dict:
    """The parsed MLproject file."""
    import yaml

    return yaml.safe_load(MLPROJECT_FILE.read_text())


def declared_parameters(entry_point: str) -> dict[str, Parameter]:
    """The parameters MLproject declares for `entry_point`, in declaration order."""
    declared = (mlproject().get("entry_points", {}).get(entry_point) or {}).get("parameters") or {}
    parameters = {}
    for name, spec in declared.items():
        spec = {"type": spec} if isinstance(spec, str) else dict(spec)
        parameters[name] = Parameter(name, spec.get("type", "string"), spec.get("default"))
    return parameters


def click_type(parameter: Parameter):
    """The click type a parameter is converted with."""
    if parameter.name in WHOLE_NUMBER_PARAMETERS:
        return WHOLE_NUMBER
    if parameter.name in SWITCH_PARAMETERS:
        return click.BOOL
    return float if parameter.type == "float" else str


def entry_point_options(entry_point: str, help_texts: Mapping[str, str]) -> Callable:
    """A decorator adding one click option per declared parameter of `entry_point`.

    Args:
        entry_point: the MLproject entry point the command implements.
        help_texts: a help line for every declared parameter (and nothing else).

    Returns:
        The decorator (apply it under `@click.command`).
    """
    parameters = declared_parameters(entry_point)
    if set(help_texts) != set(parameters):
        raise RuntimeError(
            f"help texts of {entry_point} do not match MLproject: {sorted(set(help_texts) ^ set(parameters))}"
        )

    def decorate(command: Callable) -> Callable:
        for parameter in reversed(parameters.values()):
            kind = click_type(parameter)
            default = None if parameter.required else kind(parameter.default) if kind is float else parameter.default
            if kind is click.BOOL and default is not None:
                default = str(default).strip().lower() == "true"
            command = click.option(
                f"--{parameter.name}",
                type=kind,
                required=parameter.required,
                default=default,
                show_default=not parameter.required and default != "",
                help=help_texts[parameter.name],
            )(command)
        return command

    return decorate
