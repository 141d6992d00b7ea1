"""What every command-line module shares: the one-line failure."""

from __future__ import annotations

import sys

import click


def fail(message: str) -> None:
    """Print `error: message` on stderr and exit with status 2 (bad input, not a bug)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)
