"""The `evolve` command's click options, built from the run layer's spec (`run/options.py`) and
`EvolveConfig`'s defaults, so that an option is written once: the command line adds only how a
value is parsed and its own options (where the run lives, whether to resume)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, fields
from typing import Any

import click

from jetsynth.cli.types import Number
from jetsynth.run.bounds import Bounds
from jetsynth.run.config import EvolveConfig
from jetsynth.run.options import EVOLVE_OPTIONS, Option

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _floats(ctx, param, values) -> tuple[float, ...] | None:
    """A repeatable option whose values may also be comma lists ('--mean 0.5 --mean 0.4' or
    '--mean 0.5,0.4') as one tuple of floats; None when not given."""
    try:
        found = tuple(float(v) for text in values for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"numbers expected, one per channel, got {' '.join(values)}") from None
    return found or None


def _click_type(option: Option) -> Any:
    """The click type that parses `option`'s values; None: text."""
    if isinstance(option.number, Bounds):
        return Number.within(option.number)
    if option.number is not None:
        return tuple(Number.within(each) for each in option.number)
    if option.choices is not None:
        return click.Choice(option.choices)
    if option.integer:
        return int
    if option.file:
        return click.Path(dir_okay=False, resolve_path=option.resolve)
    return None


def click_option(option: Option, default: Any) -> Decorator:
    """The click option of one spec entry; `default` is the field's default in EvolveConfig (a
    flag's is False, a repeated option's the empty tuple, as click has them)."""
    settings: dict[str, Any] = {"help": option.help}
    if option.flag:
        settings["is_flag"] = True
    elif option.per_channel:
        settings.update(type=str, multiple=True, callback=_floats)
    elif option.repeat:
        settings.update(type=_click_type(option), multiple=True)
    else:
        settings.update(type=_click_type(option), default=default)
        if default is not None:
            settings["show_default"] = True
    return click.option(option.option, option.field, **settings)


def defaults() -> dict[str, Any]:
    """Each EvolveConfig field's default."""
    return {f.name: f.default for f in fields(EvolveConfig) if f.default is not MISSING}


def evolve_options(after: Mapping[str, Sequence[Decorator]]) -> Decorator:
    """Decorates a command with every evolve option in the spec's order; `after` places the
    command's own options behind the field's option it names (as they appear in --help)."""
    unknown = set(after) - {option.field for option in EVOLVE_OPTIONS}
    if unknown:
        raise ValueError(f"no evolve option for {', '.join(sorted(unknown))}")
    default = defaults()
    decorators: list[Decorator] = []
    for option in EVOLVE_OPTIONS:
        decorators.append(click_option(option, default[option.field]))
        decorators.extend(after.get(option.field, ()))

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):  # as if written top to bottom
            command = decorator(command)
        return command

    return decorate
