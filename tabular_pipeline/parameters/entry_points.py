"""Each entry point's parameters, declared once: in MLproject, the contract users see.

The click options of `main.py` and `steps/*.py` are built from it here (names, types, defaults,
required or not), so a parameter is added or changed in MLproject alone. Only the help texts live
with the commands. A parity test checks the README's entry-point table against MLproject.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

import click

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.parameters.cli import WHOLE_NUMBER
from tabular_pipeline.paths import MLPROJECT_FILE

# MLproject has no int or bool type: counts are declared float and switches string.
WHOLE_NUMBER_PARAMETERS = frozenset({"seed", "cv", "n_jobs", "batch_rows"})
SWITCH_PARAMETERS = frozenset({"use_cache", "force", "fail_on_drift", "overwrite"})


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
    """The parsed MLproject file (every entry point's process reads it before its options exist)."""
    import yaml

    # PyYAML's libyaml-backed safe loader gives the same result in a fifth of the time (2 against
    # 9 ms here); the pure-Python one stands in where PyYAML was built without libyaml.
    return yaml.load(MLPROJECT_FILE.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


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


# What each converted type takes, as the one-line error says it.
EXPECTED_VALUES = {"integer": "a whole number", "float": "a number", "boolean": "true or false"}


@dataclass(frozen=True)
class RefusedValue:
    """A value its parameter's type refused, handed to the command so its run can fail with it."""

    message: str


class CheckedLater(click.ParamType):
    """Converts like `inner`; a refused value becomes a `RefusedValue` instead of click's usage
    text and exit, which would come before the step's run could record the error."""

    def __init__(self, inner: click.ParamType, parameter: Parameter, expected: str):
        self.inner, self.parameter, self.expected = inner, parameter, expected
        self.name = inner.name

    def convert(self, value, param, ctx):
        try:
            return self.inner.convert(value, param, ctx)
        except click.BadParameter:
            example = "" if self.parameter.required else f" such as {self.parameter.default}, the default"
            return RefusedValue(
                f"-P {self.parameter.name}={value!r} is not {self.expected}; expected {self.expected}{example}"
            )


def refuse(message: str, run) -> None:  # noqa: ARG001 - a step body receives the run
    """The body of a step whose parameter was refused: fail its run with `message`."""
    raise PipelineError(message)


def entry_point_options(
    entry_point: str, help_texts: Mapping[str, str], run_name: Callable[[dict], str] | None = None
) -> Callable:
    """A decorator adding one click option per declared parameter of `entry_point`.

    A value a parameter's type refuses (`-P cv=three`) fails the step's run in one line, as any
    other bad input does, before the command's body runs.

    Args:
        entry_point: the MLproject entry point the command implements.
        help_texts: a help line for every declared parameter (and nothing else).
        run_name: the run's name from the options, for such a failed run (else the entry point's).

    Returns:
        The decorator (apply it under `@click.command`).
    """
    parameters = declared_parameters(entry_point)
    if set(help_texts) != set(parameters):
        raise RuntimeError(
            f"help texts of {entry_point} do not match MLproject: {sorted(set(help_texts) ^ set(parameters))}"
        )

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def checked(*args, **options):
            refused = [value for value in options.values() if isinstance(value, RefusedValue)]
            if refused:
                from tabular_pipeline.orchestration.step_runs import run_step

                named = functools.partial(run_name, options) if run_name else None
                run_step(entry_point, functools.partial(refuse, refused[0].message), run_name=named)  # exits 2
            return command(*args, **options)

        for parameter in reversed(parameters.values()):
            kind = click_type(parameter)
            default = None if parameter.required else kind(parameter.default) if kind is float else parameter.default
            if kind is click.BOOL and default is not None:
                default = str(default).strip().lower() == "true"
            converted = click.types.convert_type(kind)
            if converted.name in EXPECTED_VALUES:
                converted = CheckedLater(converted, parameter, EXPECTED_VALUES[converted.name])
            checked = click.option(
                f"--{parameter.name}",
                type=converted,
                required=parameter.required,
                default=default,
                show_default=not parameter.required and default != "",
                help=help_texts[parameter.name],
            )(checked)
        return checked

    return decorate
