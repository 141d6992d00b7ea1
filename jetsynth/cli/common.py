"""What every command-line module shares: the one-line failure, and the command group that turns
every usage error (an unknown option, a number out of bounds) and every environmental failure
(a file that cannot be written, memory that cannot be had) into that one line."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

import click

from jetsynth.errors import JetsynthError

TERMINATED = 143
"""Exit status after SIGTERM (128 + 15), as after Ctrl-C it is 130 (128 + 2)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is: it unwinds like Ctrl-C (what is finished is on
    disk, the run's lock is dropped, the resume line is printed) and exits with 143."""


def interrupted_status(exc: BaseException | None) -> int:
    """130 after Ctrl-C, 143 after SIGTERM (`exc` or what it was raised from)."""
    while exc is not None:
        if isinstance(exc, Terminated):
            return TERMINATED
        exc = exc.__cause__ or exc.__context__
    return 130


@contextlib.contextmanager
def sigterm_as_interrupt():
    """For the `with` block, SIGTERM raises Terminated (a KeyboardInterrupt) in the main thread
    instead of ending the process without a word; elsewhere (a thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(_signum, _frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fail(problem: str | JetsynthError) -> None:
    """Print `error: ...` on stderr and exit with status 2 (bad input, not a bug); an error's
    settings are shown as the flags that set them (`as_flags`)."""
    message = as_flags(problem) if isinstance(problem, JetsynthError) else problem
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def as_flags(error: JetsynthError) -> str:
    """The error's message with each setting it names (in backticks) written as its flag:
    `max_drop` becomes --max-drop, `alphas` --alpha (the evolve option's own name)."""
    message = str(error)
    if not error.settings:
        return message
    from jetsynth.run.options import flag_of

    for name in error.settings:
        message = message.replace(f"`{name}`", flag_of(name))
    return message


class OneLineGroup(click.Group):
    """A click group whose failures are one line and exit status 2 however it is invoked (the
    console entry point, `python -m jetsynth`, click's test runner); Ctrl-C exits with 130."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            with sigterm_as_interrupt():
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort as exc:
            status = interrupted_status(exc)
            click.echo("terminated" if status == TERMINATED else "aborted", err=True)
            sys.exit(status)
        except Terminated:
            click.echo("terminated", err=True)
            sys.exit(TERMINATED)
        except click.ClickException as exc:
            fail(f"{exc.format_message()} (see jetsynth --help)")
        except JetsynthError as exc:  # one a command did not catch itself
            fail(exc)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc} (check the path and its permissions, and the free space)")
        except MemoryError:
            fail("out of memory: use a smaller batch, subset or input size")
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)
