"""Parameter types shared by the commands."""

from __future__ import annotations

import math
import os
from pathlib import Path

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


def study_options(command):  # type: ignore[no-untyped-def]
    """``--study``, ``--key`` and ``--reason``: record the command in a study's custody ledger."""
    command = click.option(
        "--reason", default="", help="Why this is done (recorded in the custody ledger)."
    )(command)
    command = click.option(
        "--key",
        type=click.Path(path_type=Path),
        envvar="EMQC_KEY",
        help="Your private key file (default: $EMQC_KEY); passphrase from $EMQC_KEY_PASSPHRASE "
        "or a prompt.",
    )(command)
    return click.option(
        "--study",
        type=click.Path(path_type=Path),
        envvar="EMQC_STUDY",
        help="Study folder whose custody ledger records this step (default: $EMQC_STUDY; "
        "none: nothing is recorded).",
    )(command)


def open_custody(study, key, volume=None):  # type: ignore[no-untyped-def]
    """``(Study, Signer)`` for a command run with ``--study``; None without one.

    Loads the key before the work starts, so a missing or wrong key fails at once.
    Custody events are recorded for local volumes only: ``volume`` on object storage
    with ``--study`` is refused before any work.
    """
    if study is None:
        return None
    from .. import storage

    if volume is not None and storage.is_remote(volume):
        raise click.UsageError(
            f"--study records custody events for local volumes only; {volume} is on object "
            "storage. Ingest it to local disk (emqc ingest URL DEST) and use that copy."
        )
    from ..custody import Study
    from ..custody._study import signer_from

    s = Study.open(study)
    passphrase = None
    if key is not None and _encrypted(key) and "EMQC_KEY_PASSPHRASE" not in os.environ:
        passphrase = click.prompt(f"passphrase of {key}", hide_input=True)
    return s, signer_from(s, key, passphrase=passphrase)


def _encrypted(path: Path) -> bool:
    try:
        return b"ENCRYPTED" in Path(path).read_bytes()[:64]
    except OSError:
        return False
