"""`--config FILE.toml`: a command's settings read from a file, as click's `default_map`, so that
a value from the file passes through the same checked types as the flag would, and a flag given
on the command line overrides it.

Keys are the options' names without dashes (`max-drop`) or their setting names (`max_drop`),
at the top level or inside a table named for the `--help` section that lists the option
(`[evolution]`, `[scale-out]`)."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

MAX_BYTES = 1 << 20
"""A settings file is a few kilobytes; past a mebibyte it is not one."""


def _key(name: str) -> str:
    return name.strip().replace("-", "_").lower()


def read_settings(path: Path, names: Sequence[str],
                  sections: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The settings in the TOML file `path`, keyed by parameter name. `names`: the parameters a
    file may set; `sections`: table name → the parameters it may hold (None: a flat file).
    Raises click.BadParameter naming the file and the key for anything else."""
    path = Path(path)
    if not path.is_file():
        raise click.BadParameter(f"{path} is not a file: give a TOML file of settings")
    if path.stat().st_size > MAX_BYTES:
        raise click.BadParameter(f"{path} is larger than 1 MiB: not a settings file")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"{path} is not valid TOML ({exc}): fix the file") from None
    known = set(names)
    by_table = {_key(name): {_key(n) for n in members} for name, members in (sections or {}).items()}
    settings: dict[str, Any] = {}

    def take(key: str, value: Any, allowed: set[str], where: str) -> None:
        name = _key(key)
        home = [t for t, members in by_table.items() if name in members and name in known]
        if name not in allowed and home:
            raise click.BadParameter(f"{path}: {where}'{key}' belongs under [{home[0]}]")
        if name not in allowed:
            close = difflib.get_close_matches(name, sorted(allowed), n=3)
            hint = f" (did you mean {', '.join(c.replace('_', '-') for c in close)}?)" if close else ""
            raise click.BadParameter(f"{path}: {where}'{key}' is not a setting{hint}")
        if name in settings:
            raise click.BadParameter(f"{path}: '{key}' is set twice")
        if isinstance(value, dict):
            raise click.BadParameter(f"{path}: '{key}' must be a value, not a table")
        settings[name] = list(value) if isinstance(value, list) else value

    for key, value in table.items():
        if isinstance(value, dict) and _key(key) in by_table:
            for inner, item in value.items():
                take(inner, item, by_table[_key(key)] & known, f"[{key}] ")
        elif isinstance(value, dict) and _key(key) not in known:
            tables = ", ".join(f"[{name}]" for name in by_table) or "none"
            raise click.BadParameter(f"{path}: [{key}] is not a section (sections: {tables})")
        else:
            take(key, value, known, "")
    return settings


def config_option(sections: Mapping[str, Sequence[str]] | None = None,
                  exclude: Sequence[str] = ("config", "resume", "trust_code", "help")) -> click.Option:
    """The eager `--config FILE` option: its callback turns the file into the context's
    default_map before any other option is read."""

    def load(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value is None or ctx.resilient_parsing:
            return value
        names = [p.name for p in ctx.command.params if p.name and p.name not in exclude]
        ctx.default_map = {**(ctx.default_map or {}), **read_settings(Path(value), names, sections)}
        return value

    return click.Option(["--config"], type=click.Path(dir_okay=False), is_eager=True,
                        expose_value=False, callback=load,
                        help="A TOML file of settings (keys as the options, without dashes; "
                             "optionally under [section] tables); flags given here override it.")
