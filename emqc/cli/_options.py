"""Parameter types shared by the commands."""

from __future__ import annotations

import math

import click


class Triple(click.ParamType):
    """``Z,Y,X`` (three positive numbers) or one number for all three axes."""

    name = "Z,Y,X"

    def __init__(self, *, integer: bool = False) -> None:
        self.integer = integer

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        if len(parts) == 1:
            parts = parts * 3
        try:
            if len(parts) != 3:
                raise ValueError
            nums = tuple((int(p) if self.integer else float(p)) for p in parts)
        except ValueError:
            self.fail(
                f"{value!r} is not one or three comma-separated numbers (z,y,x), e.g. 8,8,8",
                param,
                ctx,
            )
        if not all(math.isfinite(n) and n > 0 for n in nums):
            self.fail(f"{value!r}: every value must be positive", param, ctx)
        return nums


class Pair(click.ParamType):
    """``LO,HI`` with LO < HI."""

    name = "LO,HI"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, tuple):
            return value
        try:
            lo, hi = (float(p) for p in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not two comma-separated numbers LO,HI", param, ctx)
        if not hi > lo:
            self.fail(f"{value!r}: HI must be greater than LO", param, ctx)
        return lo, hi
