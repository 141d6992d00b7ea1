"""What every command-line module shares: the one-line failure, and the command group that turns
every usage error (an unknown option, a number out of bounds) and every environmental failure
(a file that cannot be written, memory that cannot be had) into that one line."""

from __future__ import annotations

import sys

import click


def fail(message: str) -> None:
    """Print `error: message` on stderr and exit with status 2 (bad input, not a bug)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


class OneLineGroup(click.Group):
    """A click group whose failures are one line and exit status 2 however it is invoked (the
    console entry point, `python -m jetsynth`, click's test runner); Ctrl-C exits with 130."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            fail(f"{exc.format_message()} (see jetsynth --help)")
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc} (check the path and its permissions, and the free space)")
        except MemoryError:
            fail("out of memory: use a smaller batch, subset or input size")
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)
