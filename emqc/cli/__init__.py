"""The ``emqc`` command line: thin commands over the library.

Every error emqc raises on purpose (:class:`emqc.errors.EmqcError`) is printed as
its one-paragraph message, without a traceback, and sets the exit status
(1: verification failed, 2: bad input). Anything else is reported as an internal
error with a request to report it (set ``EMQC_DEBUG=1`` to see the traceback).
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import click

from .. import __version__
from ..errors import EmqcError

__all__ = ["main", "cli"]


class _Group(click.Group):
    """A command group that turns exceptions into clear messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except EmqcError as exc:
            click.echo(exc.diagnostic(), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted; nothing that looks complete was left behind.", err=True)
            ctx.exit(130)
        except Exception as exc:  # noqa: BLE001 - the last line of defence of the CLI
            if os.environ.get("EMQC_DEBUG"):
                raise
            click.echo(
                f"error: emqc hit an unexpected internal error ({type(exc).__name__}: {exc}). This is "
                "a bug; please report it with the command you ran. Rerun with EMQC_DEBUG=1 to see "
                "the traceback.",
                err=True,
            )
            ctx.exit(3)


class _StderrHandler(logging.Handler):
    """Log records as plain lines on the *current* standard error (looked up per record)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _show_warning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
    click.echo(f"warning: {message}", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="emqc")
@click.option("-q", "--quiet", is_flag=True, help="Only print results and errors.")
def cli(quiet: bool) -> None:
    """emqc: preservation quality of brain tissue from 3D electron microscopy."""
    logger = logging.getLogger("emqc")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    warnings.showwarning = _show_warning


def main(argv: list[str] | None = None) -> None:
    """Run the command line (the ``emqc`` command enters through :mod:`emqc.__main__`)."""
    cli.main(args=argv, prog_name="emqc")


# Commands register themselves on `cli` when imported; they import their heavy
# dependencies inside the command, so `emqc --help` stays fast.
from . import _batch, _commands, _custody, _demo, _judge, _score, _train  # noqa: E402, F401
