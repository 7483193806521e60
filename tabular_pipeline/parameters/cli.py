"""Click parameter types shared by the entry points."""

from __future__ import annotations

import click


class WholeNumber(click.ParamType):
    """An integer that also accepts "1.0": MLproject has no int type, so counts are declared float."""

    name = "integer"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if not number.is_integer():
            self.fail(f"{value!r} is not a whole number", param, ctx)
        return int(number)


WHOLE_NUMBER = WholeNumber()
