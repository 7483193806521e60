"""Parsing and validation of `name=value;name=value` parameter strings.

Parameter strings come from command lines that orchestrators generate, so they are untrusted.
Values are parsed with `ast.literal_eval` only after the syntax tree has been checked against an
allowlist of node types, under length, count, depth and size caps. Nothing here ever calls `eval`.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Mapping

from tabular_pipeline.errors import PipelineError, one_line

Scalar = int | float | bool | str | None
ParamValue = Scalar | list

MAX_PARAM_STRING_LENGTH = 4096
MAX_VALUE_LENGTH = 1024
MAX_ENTRIES = 64
MAX_LIST_LENGTH = 100
MAX_STRING_VALUE_LENGTH = 256
MAX_ABS_NUMBER = 1e15

_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Unquoted words such as `gbdt`, `binary:logistic` or `a=b` are taken as strings: they are never
# evaluated, and quotes, brackets, spaces and parentheses are not allowed in them.
_BAREWORD_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:,=/+\-]*$")
_WORD_LITERALS = {"true": True, "false": False, "none": None, "null": None}
_ALLOWED_NODES = (ast.Expression, ast.Constant, ast.List, ast.Tuple, ast.UnaryOp, ast.USub, ast.UAdd, ast.Load)


def _describe(text: str, limit: int = 60) -> str:
    """Return `text` quoted and shortened for an error message."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return repr(shown)


def split_entries(text: str, source: str = "params") -> list[str]:
    """Split a parameter string on `;`, ignoring `;` inside quotes or brackets.

    Args:
        text: the whole parameter string, e.g. ``"a=1;b=[1, 2];c='x;y'"``.
        source: which option the string came from, for error messages.

    Returns:
        The stripped entries. A single trailing `;` is tolerated; an empty entry elsewhere is not.
    """
    entries: list[str] = []
    current: list[str] = []
    quote: str | None = None
    depth = 0
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = None
            continue
        if char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == ";" and depth <= 0:
            entries.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    entries.append("".join(current).strip())
    if entries and entries[-1] == "" and len(entries) > 1:
        entries.pop()
    if any(entry == "" for entry in entries):
        raise PipelineError(f"{source} has an empty entry (';;' or a leading ';'); expected name=value;name=value")
    return entries


def _check_tree(node: ast.AST, depth: int = 0) -> None:
    """Refuse any syntax that is not a plain literal: calls, names, attributes, lambdas..."""
    if not isinstance(node, _ALLOWED_NODES):
        raise ValueError(f"{type(node).__name__} is not allowed")
    if isinstance(node, (ast.List, ast.Tuple)):
        if depth >= 1:
            raise ValueError("nested lists are not allowed")
        if len(node.elts) > MAX_LIST_LENGTH:
            raise ValueError(f"a list may hold at most {MAX_LIST_LENGTH} values")
    if isinstance(node, ast.UnaryOp) and not isinstance(node.operand, ast.Constant):
        raise ValueError("a sign may only precede a number")
    for child in ast.iter_child_nodes(node):
        _check_tree(child, depth + (1 if isinstance(node, (ast.List, ast.Tuple)) else 0))


def _check_scalar(value: object) -> Scalar:
    """Accept only numbers, booleans, None and short strings."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("numbers must be finite")
        if abs(value) > MAX_ABS_NUMBER:
            raise ValueError(f"numbers must be at most {MAX_ABS_NUMBER:g} in size")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_VALUE_LENGTH:
            raise ValueError(f"strings may be at most {MAX_STRING_VALUE_LENGTH} characters")
        return value
    raise ValueError(f"{type(value).__name__} values are not allowed")


def parse_value(name: str, text: str, source: str = "params") -> ParamValue:
    """Parse one value: a number, boolean, None, string, or a flat list of those.

    Args:
        name: the parameter name, used in error messages.
        source: which option the value came from, for error messages.
        text: the raw value text, e.g. ``"0.1"``, ``"'gbdt'"``, ``"gbdt"`` or ``"[1, 2]"``.

    Returns:
        The literal value; tuples become lists.
    """
    text = text.strip()
    if text == "":
        raise PipelineError(f"{source}: '{name}' has no value; expected {name}=<value>")
    if len(text) > MAX_VALUE_LENGTH:
        raise PipelineError(
            f"{source}: value of '{name}' is {len(text)} characters; at most {MAX_VALUE_LENGTH} are allowed"
        )
    if text.lower() in _WORD_LITERALS:
        return _WORD_LITERALS[text.lower()]
    try:
        tree = ast.parse(text, mode="eval")
        _check_tree(tree)
        value = ast.literal_eval(tree)
        if isinstance(value, (list, tuple)):
            return [_check_scalar(item) for item in value]
        return _check_scalar(value)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        if _BAREWORD_PATTERN.match(text):
            return text
        reason = "it is not valid syntax" if isinstance(error, SyntaxError) else one_line(error)
        raise PipelineError(
            f"{source}: value of '{name}' ({_describe(text)}) is refused ({reason}); "
            "expected a number, a quoted string, True/False/None, or a flat list such as [1, 2]"
        ) from None


def check_name(name: str, source: str = "params") -> str:
    """Return `name` if it is a valid parameter name, else raise a clear error."""
    if not _NAME_PATTERN.match(name):
        raise PipelineError(
            f"{source}: {_describe(name)} is not a valid parameter name; "
            "expected letters, digits and '_' (at most 64), not starting with a digit"
        )
    return name


def parse_param_string(text: str, source: str = "params") -> dict[str, ParamValue]:
    """Parse ``name=value;name=value`` into a dict, safely.

    Args:
        text: the untrusted parameter string; may be empty.
        source: which option the string came from, for error messages.

    Returns:
        Parameter names mapped to literal values, in the order given.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PipelineError(f"{source} is not valid UTF-8 text; expected name=value;name=value") from None
    if len(text) > MAX_PARAM_STRING_LENGTH:
        raise PipelineError(f"{source} is {len(text)} characters long; at most {MAX_PARAM_STRING_LENGTH} are allowed")
    if text.strip() == "":
        return {}
    entries = split_entries(text, source)
    if len(entries) > MAX_ENTRIES:
        raise PipelineError(f"{source} has {len(entries)} entries; at most {MAX_ENTRIES} are allowed")
    parsed: dict[str, ParamValue] = {}
    for entry in entries:
        name, equals, value_text = entry.partition("=")
        name = name.strip()
        if not equals:
            raise PipelineError(f"{source}: entry {_describe(entry)} is not name=value; expected name=value;name=value")
        if name == "":
            raise PipelineError(f"{source}: entry {_describe(entry)} has an empty name; expected name=value")
        check_name(name, source)
        if name in parsed:
            raise PipelineError(f"{source}: '{name}' is given twice; expected each name once")
        parsed[name] = parse_value(name, value_text, source)
    return parsed


def parse_param_file(content: str) -> dict[str, ParamValue]:
    """Parse a parameter file: one `name=value` per line, `#` comments and blank lines ignored.

    A parameter file may be any file on the worker, so its errors name the line and the entry's
    name only, never its content: the message ends up in run tags that every reader sees.

    Args:
        content: the file's text.

    Returns:
        Parameter names mapped to literal values, in file order.
    """
    parsed: dict[str, ParamValue] = {}
    lines = [(number, line.strip()) for number, line in enumerate(content.splitlines(), start=1)]
    entries = [(number, line) for number, line in lines if line and not line.startswith("#")]
    if len(entries) > MAX_ENTRIES:
        raise PipelineError(f"param_file has {len(entries)} entries; at most {MAX_ENTRIES} are allowed")
    for number, line in entries:
        name, equals, value_text = line.partition("=")
        name = name.strip()
        where = f"param_file line {number}"
        if not equals or not _NAME_PATTERN.match(name):
            raise PipelineError(
                f"{where} is not name=value with a valid name; expected one name=value per line (letters, digits "
                "and '_')"
            )
        if name in parsed:
            raise PipelineError(f"{where}: '{name}' is given twice; expected each name once")
        try:
            parsed[name] = parse_value(name, value_text, where)
        except PipelineError:
            raise PipelineError(
                f"{where}: the value of '{name}' is refused; expected a number, a quoted string, True/False/None, "
                "or a flat list"
            ) from None
    return parsed


def parse_extra_options(args: Iterable[str]) -> dict[str, ParamValue]:
    """Parse `--name value` / `--name=value` pairs that MLflow makes of undeclared `-P` pairs.

    Args:
        args: the leftover command-line words, e.g. ``["--learning_rate", "0.2"]``.

    Returns:
        Parameter names mapped to literal values.
    """
    words = list(args)
    parsed: dict[str, ParamValue] = {}
    index = 0
    while index < len(words):
        word = words[index]
        if not word.startswith("--"):
            raise PipelineError(f"unexpected argument {_describe(word)}; expected -P name=value pairs")
        name, equals, value_text = word[2:].partition("=")
        if not equals:
            if index + 1 >= len(words):
                raise PipelineError(f"option --{name} has no value; expected -P {name}=<value>")
            index += 1
            value_text = words[index]
        check_name(name, "extra parameter")
        parsed[name] = parse_value(name, value_text, "extra parameter")
        index += 1
    return parsed


def format_param_string(params: Mapping[str, ParamValue]) -> str:
    """Write params back as a canonical ``name=value;...`` string (sorted, repr-quoted).

    Args:
        params: values as returned by `parse_param_string`.

    Returns:
        A string that `parse_param_string` parses back to the same values.
    """
    return ";".join(f"{name}={params[name]!r}" for name in sorted(params))
